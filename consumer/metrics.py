"""The worker's Prometheus metrics, served on ``ML_METRICS_PORT`` + ``ML_WORKER_INSTANCE`` - 1
(default 9102; 0 = off) at ``ML_WORKER_METRICS_HOST`` (default 127.0.0.1).

What this process did: events by type and outcome, training time by stage, dead letters, waits
for a tenant lock, whether a training runs now. What is true of every tenant (its published
version, last successful run, validation quality) is read from Redis when scraped
(``published.tenantmetrics``), so every worker reports it alike and a restart loses nothing.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable, Iterator
from typing import Any

import redis
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client import start_http_server as _start_http_server
from prometheus_client.registry import Collector

from published.tenantmetrics import TenantCollector

log = logging.getLogger("consumer")

EVENTS = Counter("totara_ml_worker_events", "Events handled, by type and outcome (a train's "
                 "outcome is the run's status: published, not_trained, skipped, rejected, "
                 "stale, failed; or retried, lock_wait, duplicate, dead_lettered)",
                 ["type", "outcome"])
STAGE_SECONDS = Histogram("totara_ml_worker_training_stage_seconds",
                          "Duration of each stage of a training run (total: the whole run)",
                          ["stage"], buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
                                              1200, 1800, 3600, 7200))
DEAD_LETTERS = Counter("totara_ml_worker_dead_letters",
                       "Messages moved to the dead-letter queue, by event type", ["type"])
LOCK_WAITS = Counter("totara_ml_worker_lock_waits",
                     "Train events held back because another worker was training the tenant")
TRAINING = Gauge("totara_ml_worker_training_in_progress",
                 "1 while this worker runs a training or a tenants.csv download")

def _type(delivery: Any) -> str:
    event = getattr(delivery, "event", None)
    return event.type if event is not None else "invalid"


def event(delivery: Any, outcome: str) -> None:
    """Count the end of an event's handling (``delivery`` is a consumer.delivery.Delivery)."""
    EVENTS.labels(_type(delivery), outcome).inc()


def dead_lettered(delivery: Any) -> None:
    event(delivery, "dead_lettered")
    DEAD_LETTERS.labels(_type(delivery)).inc()


def lock_wait(delivery: Any) -> None:
    event(delivery, "lock_wait")
    LOCK_WAITS.inc()


def training_finished(result: Any, seconds: float) -> None:
    """Observe a finished run's stage durations (a pipeline.TenantResult) and its total."""
    for stage, value in (getattr(result, "stage_seconds", None) or {}).items():
        STAGE_SECONDS.labels(stage).observe(float(value))
    STAGE_SECONDS.labels("total").observe(seconds)


class _Process(Collector):
    """This process's metrics (the default registry) beside the tenant gauges."""

    def collect(self) -> Iterator[Any]:
        return REGISTRY.collect()


def registry(client: Callable[[], redis.Redis], retrain_minutes: int) -> CollectorRegistry:
    made = CollectorRegistry(auto_describe=False)
    made.register(_Process())
    made.register(TenantCollector(client, retrain_minutes))
    return made


def serve(port: int, client: Callable[[], redis.Redis], retrain_minutes: int,
          addr: str = "127.0.0.1") -> int | None:
    """Serve /metrics on ``port``; the port, or None when it cannot be bound.

    No other port is tried: each worker's port is fixed by its instance number, so Prometheus
    scrapes the worker it means to. A port taken or not bindable leaves the worker training,
    without metrics, and says why at start.
    """
    # The *_created series double what a scrape carries and no dashboard reads them.
    disable_created_metrics()
    try:
        _start_http_server(port, addr=addr, registry=registry(client, retrain_minutes))
    except OSError as exc:
        hint = (" (another worker with the same ML_WORKER_INSTANCE on this host?)"
                if exc.errno == errno.EADDRINUSE else "")
        log.error("cannot serve metrics on %s:%d: %s%s; this worker exposes no metrics",
                  addr, port, exc.strerror or exc, hint)
        return None
    log.info("metrics on http://%s:%d/metrics", addr, port)
    return port
