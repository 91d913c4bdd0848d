"""Wiring of a worker process: configuration, logging, Redis clients, signals, the loop."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterable
from pathlib import Path
from types import FrameType

from consumer import broker, jobs
from consumer import metrics as worker_metrics
from consumer.dedup import DoneMarkers
from consumer.recovery import DEFAULT_INTERVAL_SECONDS, Recovery
from consumer.retry import RetryPolicy
from consumer.worker import Worker
from published.locks import DEFAULT_TTL_SECONDS, LockRegistry, worker_name
from recommender.service import TenantsFn, TrainFn
from runtime import logsetup
from runtime.config import Settings, load_or_exit
from runtime.errors import ConfigError
from runtime.redisconn import connect

log = logging.getLogger("consumer")

# The connection thread's Redis calls (duplicate markers, interactions, scheduler) are small; a
# Redis that does not answer within this must not stall heartbeats for long.
LOOP_REDIS_TIMEOUT = 5.0
# Past ML_WORKER_STOP_GRACE, the seconds a fit gets to reach its next epoch boundary and write
# its checkpoint: within the 30 s the recipes' stop timeouts leave beyond the grace.
CHECKPOINT_WAIT = 20.0


def load_settings() -> Settings:
    """The worker needs Totara's URL and key unless it trains from ``ML_EXPORT_DIR``."""
    settings = load_or_exit(require_totara=False)
    if settings.export_dir is None:
        settings = load_or_exit(require_totara=True)
    return settings


def setup_logging(level: str, fmt: str = "text", secrets: Iterable[str | None] = ()) -> None:
    logsetup.configure(level, fmt, secrets)


def build_worker(settings: Settings, *, train_fn: TrainFn | None = None,
                 tenants_fn: TenantsFn | None = None, prefix: str | None = None,
                 policy: RetryPolicy | None = None, lock_ttl: float = DEFAULT_TTL_SECONDS,
                 schedule_seconds: int | None = None, stop_grace: float | None = None,
                 alive_file: Path | None = None) -> Worker:
    """A worker on the configured broker and Redis; tests pass fakes for the slow parts."""
    connection, topology = broker.from_settings(settings, prefix)
    loop_client = connect(settings, socket_timeout=LOOP_REDIS_TIMEOUT,
                          socket_connect_timeout=LOOP_REDIS_TIMEOUT)
    training_client = connect(settings)
    context = jobs.JobContext(settings=settings, client=training_client,
                              markers=DoneMarkers(training_client), locks=LockRegistry(),
                              train_fn=train_fn, tenants_fn=tenants_fn,
                              lock_ttl=lock_ttl, owner=worker_name())
    schedule = settings.schedule if schedule_seconds is None else schedule_seconds
    return Worker(connection, topology, client=loop_client, context=context, policy=policy,
                  schedule_seconds=schedule or None,
                  stop_grace=settings.worker_stop_grace if stop_grace is None else stop_grace,
                  alive_file=alive_file, max_deliveries=settings.max_deliveries,
                  # A replaced trainer (tests) cannot checkpoint: nothing to wait for.
                  checkpoint_wait=CHECKPOINT_WAIT if train_fn is None else 0.0)


def install_signal_handlers(worker: Worker) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        worker.request_stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_worker(settings: Settings | None = None, **options: object) -> int:
    """``python -m consumer``: consume until SIGTERM/SIGINT; returns the exit status."""
    settings = settings or load_settings()
    setup_logging(settings.log_level, settings.log_format, [settings.totara_key])
    # Seconds between checks for models Redis lost (consumer.recovery); 0 turns it off.
    recovery_interval = float(options.pop("recovery_interval", DEFAULT_INTERVAL_SECONDS))
    try:
        worker = build_worker(settings, **options)  # type: ignore[arg-type]
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    install_signal_handlers(worker)
    if settings.metrics_port:
        # Its own client: scrapes run on the metrics server's thread.
        scrape_client = connect(settings, socket_timeout=2, socket_connect_timeout=2)
        worker_metrics.serve(settings.metrics_port, lambda: scrape_client,
                             settings.retrain_freq_minutes, addr=settings.metrics_host)
    log.info("worker %s starting (retrain every %d min)", worker.context.owner,
             settings.retrain_freq_minutes)
    context = worker.context
    recovery = Recovery(settings, context.client, context.locks, interval=recovery_interval,
                        owner=context.owner, lock_ttl=context.lock_ttl)
    if recovery_interval > 0:
        recovery.start()
    try:
        worker.serve()
    finally:
        recovery.stop()
    log.info("worker stopped")
    return 0
