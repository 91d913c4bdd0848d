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

from published import overview, runs
from published.runs import LastRun, RunMeta, RunStatus, VersionStatus

# The health check's bound: beyond it, tenants are left out of the metrics rather than
# making every scrape slow.
MAX_TENANTS = 1000
CACHE_SECONDS = 5.0
QUALITY = ("precision_at_10", "recall_at_10", "auc")
SIZES = ("n_users", "n_items", "n_interactions")


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
        # The alert on stale tenants compares their age with this (deploy/prometheus/alerts.yml).
        period = GaugeMetricFamily("totara_ml_retrain_period_seconds",
                                   "ML_RECOMMENDATION_RETRAIN_FREQ in seconds")
        period.add_metric([], self.period)
        try:
            seen = overview.read(self.client(), runs.FIELDS, runs.RUN_FIELDS, MAX_TENANTS)
        except (redis.RedisError, OSError, RuntimeError):
            up.add_metric([], 0)
            return [up, period]
        up.add_metric([], 1)
        families = _families()
        for state in seen.tenants:
            _add_tenant(families, state.tenant, RunMeta.from_fields(state.meta),
                        LastRun.from_fields(state.run), now)
        leader = runs.parse_number(seen.leader)
        if leader is not None and self.period:
            families["next_retrain"].add_metric([], leader + self.period)
        return [up, period, *families.values()]



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


def _add_tenant(families: dict[str, GaugeMetricFamily], tenant: str, meta: RunMeta,
                run: LastRun, now: float) -> None:
    trained = meta.status == VersionStatus.TRAINED
    if meta.trained_at is not None:
        families["age"].add_metric([tenant], max(0.0, now - meta.trained_at))
    if meta.status is not None:
        families["trained"].add_metric([tenant], 1 if trained else 0)
    for name in QUALITY if trained else ():
        value = getattr(meta, name)
        if value is not None:
            families["quality"].add_metric([tenant, name], value)
    if trained and meta.incremental_runs is not None:
        families["incremental"].add_metric([tenant], meta.incremental_runs)
    for name in SIZES:
        value = getattr(meta, name)
        if value is not None:
            families["size"].add_metric([tenant, name[2:]], value)
    succeeded = run.at if run.status in runs.SUCCESS_STATUSES else None
    successes = [t for t in (meta.trained_at, succeeded) if t is not None]
    if successes:
        families["success"].add_metric([tenant], max(successes))
    if run.at is not None:
        families["last_run"].add_metric([tenant], run.at)
        families["last_ok"].add_metric([tenant], 0 if run.status == RunStatus.FAILED else 1)
