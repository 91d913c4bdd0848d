"""GET / (the status page), /favicon.ico, /openapi.json.

The status page names the service, its mode and endpoints, and shows per tenant the published
model (algorithm, version, when it was trained, export sizes, validation quality), the latest
training run, the next scheduled retrain and whether Redis, the broker and Totara answer
(api/status.py). Rendered from api/templates/status.html, autoescaped.
It is open, as in the original, so it shows no key, URL or address; operators who do not want
tenant figures public restrict ``/`` by network like ``/metrics``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import falcon
import redis

from api import pages, status
from published.runs import Fit, RunStatus, VersionStatus

ENDPOINTS = (
    ("GET /user-items", "recommended items for a user "
     "(totara_user_id, item_type, tenant, n_items)"),
    ("GET /similar-items", "items similar to an item (totara_item_id, tenant, n_items)"),
    ("GET /health-check", "Totara connectivity, clock variance and model status"),
    ("GET /livez", "liveness probe, no authentication"),
    ("GET /readyz", "readiness probe, no authentication"),
    ("GET /metrics", "Prometheus metrics, no authentication"),
    ("GET /openapi.json", "OpenAPI 3 description of these endpoints"),
    ("GET /explore", "the operator's explorer, with its own password (ML_EXPLORER_PASSWORD; "
     "off when unset)"),
)
# Beside the code, so an installed package and an image serve it too (in a checkout a link to
# docs/openapi.json).
OPENAPI_FILE = Path(__file__).resolve().parent / "openapi.json"
_COLUMNS = ("Tenant", "Status", "Algorithm", "Version", "Trained", "Users", "Items",
            "Interactions", "P@10", "R@10", "AUC", "Last run")


def _when(stamp: float | None, now: float) -> str:
    if stamp is None:
        return "-"
    try:
        text = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp))
    except (OverflowError, ValueError, OSError):  # a stored time past what a date can hold
        return "-"
    return f"{text} ({_ago(now - stamp)})"


def _when_cell(stamp: float | None, now: float) -> tuple[str, str]:
    """``_when`` as (date, how long ago), shown on two lines in a narrow table column."""
    date, _, ago = _when(stamp, now).partition(" (")
    return date, ago[:-1]


def _ago(seconds: float) -> str:
    if seconds < 0:
        return f"in {_span(-seconds)}"
    return f"{_span(seconds)} ago"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def _number(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _tenant_row(row: status.TenantRow, now: float) -> dict[str, Any]:
    meta, run = row.meta, row.run
    trained = meta.status == VersionStatus.TRAINED
    last_run = None
    if run.status:
        last_run = {"css": "bad" if run.status == RunStatus.FAILED else "ok",
                    "status": run.status, "at": _when_cell(run.at, now), "message": run.message}
    return {
        "tenant": row.tenant, "status": meta.status or "incomplete",
        "algorithm": meta.algorithm or "-", "version": row.version or "-",
        # continued from an earlier model: its quality is on new pairs
        "incremental_from": ((meta.incremental_from or "") if meta.fit == Fit.INCREMENTAL
                             else None),
        "trained": _when_cell(meta.trained_at, now),
        "numbers": [_number(n) for n in (meta.n_users, meta.n_items, meta.n_interactions)],
        "quality": [_number(q, 4) if trained else "-"
                    for q in (meta.precision_at_10, meta.recall_at_10, meta.auc)],
        "run": last_run,
    }


def _schedule(report: status.Report) -> tuple[str, str, str]:
    """The schedule sentence as (text before, time in bold, text after)."""
    every = f"every {report.retrain_seconds // 60} min."
    if report.next_retrain is not None:
        return ("Next scheduled retrain: ", _when(report.next_retrain, report.now),
                f", {every}")
    if report.redis_ok:
        return ("Next scheduled retrain: not scheduled yet (no worker has started), then "
                f"{every}", "", "")
    return "Next scheduled retrain: unknown while Redis cannot be reached.", "", ""


def render(dev: bool, report: status.Report) -> str:
    head, when, tail = _schedule(report)
    return pages.render(
        "status.html", report=report, mode="development" if dev else "production",
        generated=time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(report.now)),
        columns=_COLUMNS, rows=[_tenant_row(row, report.now) for row in report.tenants],
        more=max(report.tenants_total - len(report.tenants), 0), endpoints=ENDPOINTS,
        schedule_head=head, schedule_when=when, schedule_tail=tail)


class Home:
    """GET /: the status page, read from Redis on every load (a few pipelined round trips)."""

    def __init__(self, dev: bool, client: Callable[[], redis.Redis],
                 broker_url: Callable[[], str], retrain_minutes: int, *,
                 totara_url: str | None = None) -> None:
        self.dev = dev
        self.client = client
        self.broker = status.BrokerProbe(broker_url)
        self.totara = status.TotaraProbe(totara_url)
        self.retrain_minutes = retrain_minutes

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        report = status.collect(self.client, self.broker, self.retrain_minutes,
                                totara=self.totara)
        resp.content_type = falcon.MEDIA_HTML
        resp.text = render(self.dev, report)


class Favicon:
    """No icon: an empty answer keeps browsers from retrying and logs free of 404s."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = falcon.HTTP_204


class OpenApi:
    """Serves api/openapi.json (docs/openapi.json), read once; 404 if it is missing."""

    def __init__(self, path: Path = OPENAPI_FILE) -> None:
        self._document = path.read_bytes() if path.is_file() else None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._document is None:
            raise falcon.HTTPNotFound()
        resp.data = self._document
        resp.content_type = falcon.MEDIA_JSON
