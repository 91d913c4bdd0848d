"""What the status page (``GET /``) shows: per tenant, the published model and its latest run;
the next scheduled retrain; whether Redis and the message broker answer.

Everything comes from Redis (docs/redis-keys.md) except the broker check, which is cached for
``BROKER_CACHE_SECONDS``: the page is open to anyone, so loading it must not be a way to make the
service open connections at will. No address, key or URL is ever part of the report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from api import checks
from published import overview, runs
from published.runs import LastRun, RunMeta
from runtime import publictext

MAX_TENANTS = 500
BROKER_CACHE_SECONDS = 30.0


@dataclass
class TenantRow:
    tenant: str
    version: str
    meta: RunMeta
    run: LastRun


@dataclass
class Report:
    now: float
    redis_ok: bool
    redis_detail: str
    broker_ok: bool | None  # None: not checked yet
    broker_detail: str
    tenants: list[TenantRow] = field(default_factory=list)
    tenants_total: int = 0
    scheduled_period: float | None = None  # start of the newest claimed retrain period
    retrain_seconds: int = 0
    totara_ok: bool | None = None  # None: not configured
    totara_detail: str = "not checked"

    @property
    def next_retrain(self) -> float | None:
        if self.scheduled_period is None:
            return None
        return self.scheduled_period + self.retrain_seconds


class _CachedProbe:
    """A dependency check run at most every ``ttl`` seconds, whoever loads the page."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._result: tuple[float, bool | None, str] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> tuple[bool | None, str]:
        with self._lock:
            now = time.monotonic()
            if self._result is None or now - self._result[0] >= self._ttl:
                self._result = (now, *self._probe())
            return self._result[1], self._result[2]

    def _probe(self) -> tuple[bool | None, str]:
        raise NotImplementedError


class BrokerProbe(_CachedProbe):
    """Whether the broker accepts a connection, checked at most every ``ttl`` seconds."""

    def __init__(self, url: Callable[[], str], ttl: float = BROKER_CACHE_SECONDS,
                 check: Callable[[str], str | None] = checks.broker) -> None:
        super().__init__(ttl)
        self._url = url
        self._check = check

    def _probe(self) -> tuple[bool, str]:
        try:
            url = self._url()
        except Exception as exc:  # a broker URL that cannot be built is a finding
            return False, f"not configured: {type(exc).__name__}"
        kind = "RabbitMQ" if url.startswith(("amqp", "pyamqp")) else "Redis"
        if url.startswith("memory"):
            kind = "in-memory"
        problem = self._check(url)
        # The check's text can hold the address: only its kind of failure is shown.
        return problem is None, kind if problem is None else f"{kind}: unreachable"


class TotaraProbe(_CachedProbe):
    """Whether Totara answers the health check's status query (api.checks.totara), at most
    every ``ttl`` seconds; what is shown never holds the URL or the address."""

    def __init__(self, url: str | None, ttl: float = BROKER_CACHE_SECONDS,
                 check: Callable[[str | None], tuple[checks.Facts, list[str]]] = checks.totara,
                 ) -> None:
        super().__init__(ttl)
        self._url = url
        self._check = check

    def _probe(self) -> tuple[bool | None, str]:
        if not self._url:
            return None, "not configured"
        facts, problems = self._check(self._url)
        if problems:
            return False, "unreachable or not answering its status query"
        elapsed = facts.get("elapsed_seconds")
        return True, ("reachable" if not isinstance(elapsed, int | float)
                      else f"reachable ({elapsed * 1000:.0f} ms)")


def collect(client: Callable[[], redis.Redis], broker: Callable[[], tuple[bool | None, str]],
            retrain_minutes: int, now: float | None = None,
            totara: Callable[[], tuple[bool | None, str]] | None = None) -> Report:
    """The report; a Redis that is down gives a report that says so, never an exception."""
    now = time.time() if now is None else now
    broker_ok, broker_detail = broker()
    report = Report(now, False, "", broker_ok, broker_detail,
                    retrain_seconds=retrain_minutes * 60)
    if totara is not None:
        report.totara_ok, report.totara_detail = totara()
    started = time.perf_counter()
    try:
        _read(client(), report)
    except (redis.RedisError, OSError, RuntimeError) as exc:
        report.redis_ok, report.redis_detail = False, f"unreachable ({type(exc).__name__})"
        report.tenants = []
        return report
    report.redis_ok = True
    report.redis_detail = f"reachable ({(time.perf_counter() - started) * 1000:.1f} ms)"
    return report


def _read(connection: redis.Redis, report: Report) -> None:
    seen = overview.read(connection, runs.FIELDS, runs.RUN_FIELDS, MAX_TENANTS)
    report.tenants_total = seen.total
    for state in seen.tenants:
        run = LastRun.from_fields(state.run)
        # Run messages quote downloads and errors: credentials, URLs, hosts and paths are cut.
        run.message = publictext.public(" ".join(run.message.split()))[:300]
        report.tenants.append(TenantRow(state.tenant, state.version or "",
                                        RunMeta.from_fields(state.meta), run))
    report.scheduled_period = runs.parse_number(seen.leader)
