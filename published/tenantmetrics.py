"""Per-tenant gauges read from Redis when Prometheus scrapes: the same in every process.

The published version, its age, size and validation quality, the latest training run and the
next scheduled retrain are shared state in Redis (docs/redis-keys.md), not something one process
saw, so the API and every worker report them alike, and a restarted process loses nothing.
One pipelined read per scrape at most every ``CACHE_SECONDS``, whatever the number of scrapers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from published import overview

# The health check's bound: beyond it, tenants are left out of the metrics rather than
# making every scrape slow.
MAX_TENANTS = 1000
CACHE_SECONDS = 5.0
# Statuses of a run after which the tenant is served what it should be (consumer.jobs).
SUCCESS_STATUSES = frozenset({"published", "not_trained", "skipped", "stale", "rejected"})
QUALITY = ("precision_at_10", "recall_at_10", "auc")
SIZES = ("n_users", "n_items", "n_interactions")
_META = ["status", "trained_at", "incremental_runs", *QUALITY, *SIZES]
_RUN = ["status", "at"]


def _number(raw: str) -> float | None:
    try:
        value = float(raw) if raw else None
    except ValueError:
        return None
    return value if value is not None and value == value else None


class TenantCollector(Collector):
    """Collects ``totara_ml_tenant_*`` and ``totara_ml_redis_up`` from ``client()``."""

    def __init__(self, client: Callable[[], redis.Redis], retrain_minutes: int,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.period = retrain_minutes * 60
        self.clock = clock
        self._cached: tuple[float, list[GaugeMetricFamily]] | None = None
        self._lock = threading.Lock()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            now = self.clock()
            if self._cached is None or now - self._cached[0] >= CACHE_SECONDS:
                self._cached = (now, self._read(now))
            return iter(self._cached[1])

    def _read(self, now: float) -> list[GaugeMetricFamily]:
        up = GaugeMetricFamily("totara_ml_redis_up", "1 when Redis answered the last scrape")
        try:
            seen = overview.read(self.client(), _META, _RUN, MAX_TENANTS)
        except (redis.RedisError, OSError, RuntimeError):
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        families = _families()
        for state in seen.tenants:
            _add_tenant(families, state.tenant, state.meta, state.run, now)
        leader = _number(seen.leader)
        if leader is not None and self.period:
            families["next_retrain"].add_metric([], leader + self.period)
        return [up, *families.values()]



def _families() -> dict[str, GaugeMetricFamily]:
    def gauge(name: str, text: str, labels: tuple[str, ...] = ("tenant",)) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, text, labels=list(labels))

    return {
        "age": gauge("totara_ml_tenant_published_version_age_seconds",
                     "Seconds since the published version of the tenant was trained"),
        "trained": gauge("totara_ml_tenant_trained",
                         "1 when the published version is a trained model, 0 when the tenant "
                         "had too little data"),
        "success": gauge("totara_ml_tenant_last_success_timestamp_seconds",
                         "Unix time of the tenant's latest successful training run"),
        "last_run": gauge("totara_ml_tenant_last_run_timestamp_seconds",
                          "Unix time of the tenant's latest training run, whatever its outcome"),
        "last_ok": gauge("totara_ml_tenant_last_run_ok",
                         "1 when the tenant's latest training run succeeded, 0 when it failed"),
        "quality": gauge("totara_ml_tenant_validation_score",
                         "Validation quality of the published model (precision_at_10, "
                         "recall_at_10, auc)", ("tenant", "metric")),
        "size": gauge("totara_ml_tenant_export_size",
                      "Users, items and interactions in the export of the published version",
                      ("tenant", "what")),
        "incremental": gauge("totara_ml_tenant_incremental_runs",
                             "Warm starts in a row behind the published version (0: it is a "
                             "full fit; a full fit follows ML_INCREMENTAL_RUNS of them)"),
        "next_retrain": GaugeMetricFamily("totara_ml_next_retrain_timestamp_seconds",
                                          "Unix time of the next scheduled export-ready"),
    }


def _add_tenant(families: dict[str, GaugeMetricFamily], tenant: str,
                meta: dict[str, str], run: dict[str, str], now: float) -> None:
    status = meta["status"]
    trained_at = _number(meta["trained_at"])
    if trained_at is not None:
        families["age"].add_metric([tenant], max(0.0, now - trained_at))
    if status:
        families["trained"].add_metric([tenant], 1 if status == "trained" else 0)
    for name in QUALITY if status == "trained" else ():
        value = _number(meta[name])
        if value is not None:
            families["quality"].add_metric([tenant, name], value)
    runs = _number(meta["incremental_runs"])
    if status == "trained" and runs is not None:
        families["incremental"].add_metric([tenant], runs)
    for name in SIZES:
        value = _number(meta[name])
        if value is not None:
            families["size"].add_metric([tenant, name[2:]], value)
    run_status = run["status"]
    run_at = _number(run["at"])
    successes = [t for t in (trained_at, run_at if run_status in SUCCESS_STATUSES else None)
                 if t is not None]
    if successes:
        families["success"].add_metric([tenant], max(successes))
    if run_at is not None:
        families["last_run"].add_metric([tenant], run_at)
        families["last_ok"].add_metric([tenant], 0 if run_status == "failed" else 1)
