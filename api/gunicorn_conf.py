"""gunicorn settings of the API, read by the gunicorn master before it forks.

Used by ``totara-recommender-api`` (api/serve.py) as ``-c python:api.gunicorn_conf``, and by
``gunicorn -c deploy/gunicorn.conf.py 'api.app:create_app()'`` from a checkout.
``ML_BIND`` (contract §3, waitress syntax: ``*:5000`` means every interface) sets the listen
address; ``WEB_CONCURRENCY`` overrides the worker count.
Any setting can still be overridden on the gunicorn command line.
"""

import os
import sys

from gunicorn.glogging import Logger as _GunicornLogger

from runtime import logsetup
from runtime.config import load_or_exit

# Refuses to start (exit 2, one line) on a missing ML_TOTARA_KEY or any invalid ML_* value, in
# the master, before workers are forked and fail one by one.
_settings = load_or_exit()


def _worker_count() -> int:
    raw = os.environ.get("WEB_CONCURRENCY", "").strip()
    if raw:
        if not raw.isdigit() or not 1 <= int(raw) <= 256:
            sys.exit(f"configuration error: WEB_CONCURRENCY={raw!r}: expected 1 to 256")
        return int(raw)
    # Requests are short and CPU-bound in Python (Redis answers in well under a millisecond),
    # so processes scale with cores; the cap bounds the connections to Redis per host.
    return min(2 * (os.cpu_count() or 1) + 1, 17)


bind = _settings.gunicorn_bind
workers = _worker_count()
# gunicorn's asyncio worker reads every connection in an event loop and hands a request on only
# once it is complete, so clients that send slowly or not at all cost a coroutine, not a worker
# (with sync workers about 17 such connections held every worker for 30 s). The app stays WSGI:
# post_worker_init below runs it in the loop for Totara's calls, in a few threads for the pages
# that may wait on something slow (api/inloop.py). Why this model: docs/scaling.md.
worker_class = "asgi"
# No preload: each worker imports the app and connects to Redis after the fork
# (api.connection.LazyRedis), so no connection pool is shared between processes.
preload_app = False
# Totara waits 2 s at most; a worker stuck far longer than that is killed and replaced.
timeout = 30
graceful_timeout = 10
# The heartbeat file on tmpfs: fchmod on a disk-backed /tmp can block a worker.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
loglevel = _settings.log_level.lower()
errorlog = "-"
# The per-user control socket would collide between instances on one host; it is not used.
control_socket_disable = True
proc_name = "totara-ml-api"
# One log format for gunicorn's own lines and the app's (ML_LOG_FORMAT), the key redacted. Not
# through logconfig_dict: that turns gunicorn's access log on, which costs every request.
logsetup.register_secrets([_settings.totara_key])
# The access log is the app's (api/observe.py: ML_LOG_FORMAT, redaction, the request id,
# escaped paths, ML_ACCESS_LOG=0 turns it off); gunicorn's own would be a second line for each
# request, with the query string and its signed parameters. It stays off.
accesslog = None


class ServiceLogger(_GunicornLogger):
    def setup(self, cfg):
        super().setup(cfg)
        # The access handlers too: --access-logfile on a command line still redacts.
        for handler in (*self.error_log.handlers, *self.access_log.handlers):
            handler.setFormatter(logsetup.formatter(_settings.log_format))


logger_class = ServiceLogger

# Prometheus multiprocess mode: each worker writes its counters to files in a per-run folder,
# so /metrics (answered by any worker) adds up all of them (api/metrics.py).
_metrics_dir: list = []


def post_worker_init(worker):
    # After the app is loaded in the worker, before it serves: the asyncio worker is given the
    # WSGI app wrapped (`-k sync` or `-k gthread` on the command line still serve it as is).
    from gunicorn.workers.gasgi import ASGIWorker

    if isinstance(worker, ASGIWorker):
        from api.inloop import InLoopWsgi

        worker.asgi = InLoopWsgi(worker.asgi)


def on_starting(server):
    from api import multiproc

    _metrics_dir.append(multiproc.prepare())


def child_exit(server, worker):
    from api import multiproc

    multiproc.worker_exited(worker.pid)


def on_exit(server):
    from api import multiproc

    for folder, made_here in _metrics_dir:
        if made_here:
            multiproc.remove(folder)
