"""GET / (the status page), /favicon.ico, /openapi.json.

The status page names the service, its mode and endpoints, and shows per tenant the published
model (algorithm, version, when it was trained, export sizes, validation quality), the latest
training run, the next scheduled retrain and whether Redis and the broker answer (api/status.py).
It is open, as in the original, so it shows no key, URL or address; operators who do not want
tenant figures public restrict ``/`` by network like ``/metrics``.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path

import falcon
import redis

from api import status
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
)
# Beside the code, so an installed package and an image serve it too (in a checkout a link to
# docs/openapi.json).
OPENAPI_FILE = Path(__file__).resolve().parent / "openapi.json"
_STYLE = """
    body { font-family: system-ui, sans-serif; margin: 2em; color: #222; font-size: 14px; }
    table { border-collapse: collapse; margin: 1em 0; }
    th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; }
    td code { font-size: 12px; }
    td { white-space: nowrap; }
    td.run { white-space: normal; min-width: 12em; max-width: 20em; overflow-wrap: anywhere; }
    th { background: #f0f0f0; }
    td.num { text-align: right; font-variant-numeric: tabular-nums; }
    .ok { color: #176f2c; font-weight: bold; }
    .bad { color: #b00020; font-weight: bold; }
    .muted { color: #666; }
"""
_COLUMNS = ("Tenant", "Status", "Algorithm", "Version", "Trained", "Users", "Items",
            "Interactions", "P@10", "R@10", "AUC", "Last run")


def _e(value: object) -> str:
    return html.escape(str(value))


def _when(stamp: float | None, now: float) -> str:
    if stamp is None:
        return "-"
    try:
        text = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(stamp))
    except (OverflowError, ValueError, OSError):  # a stored time past what a date can hold
        return "-"
    return f"{text} ({_ago(now - stamp)})"


def _when_cell(stamp: float | None, now: float) -> str:
    """``_when`` on two lines, for a narrow table column."""
    date, _, ago = _when(stamp, now).partition(" (")
    return _e(date) + (f'<br><span class="muted">{_e(ago[:-1])}</span>' if ago else "")


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


def _state(ok: bool | None, detail: str) -> str:
    css = "muted" if ok is None else ("ok" if ok else "bad")
    word = "unknown" if ok is None else ("OK" if ok else "DOWN")
    return f'<span class="{css}">{word}</span> {_e(detail)}'


def _tenant_row(row: status.TenantRow, now: float) -> str:
    meta, run = row.meta, row.run
    trained = meta.status == VersionStatus.TRAINED
    quality = [_number(q, 4) if trained else "-"
               for q in (meta.precision_at_10, meta.recall_at_10, meta.auc)]
    last_run = "-"
    if run.status:
        css = "bad" if run.status == RunStatus.FAILED else "ok"
        last_run = (f'<span class="{css}">{_e(run.status)}</span> {_when_cell(run.at, now)}'
                    + (f'<br><span class="muted">{_e(run.message)}</span>'
                       if run.message else ""))
    algorithm = _e(meta.algorithm or "-")
    if meta.fit == Fit.INCREMENTAL:  # continued from an earlier model: quality is on new pairs
        algorithm += (f'<br><span class="muted" title="validated on interactions new since '
                      f'{_e(meta.incremental_from or "")}">incremental</span>')
    cells = [
        _e(row.tenant), _e(meta.status or "incomplete"), algorithm,
        f"<code>{_e(row.version or '-')}</code>", _when_cell(meta.trained_at, now),
        *(f'<td class="num">{_number(n)}' for n in (meta.n_users, meta.n_items,
                                                    meta.n_interactions)),
        *(f'<td class="num">{q}' for q in quality), f'<td class="run">{last_run}',
    ]
    tds = "".join(c if c.startswith("<td") else f"<td>{c}" for c in cells)
    return f'      <tr class="tenant" data-tenant="{_e(row.tenant)}">{tds}</tr>'


def _tenants(report: status.Report) -> str:
    if not report.redis_ok:
        return ('    <p class="bad" id="tenants-unknown">The model store (Redis) cannot be '
                "reached: the published models are unknown.</p>")
    if not report.tenants:
        return '    <p id="no-tenants">No tenant has been published yet.</p>'
    head = "".join(f"<th>{c}" for c in _COLUMNS)
    rows = "\n".join(_tenant_row(row, report.now) for row in report.tenants)
    more = (f'\n    <p class="muted">{report.tenants_total - len(report.tenants)} more '
            "tenants not shown.</p>" if report.tenants_total > len(report.tenants) else "")
    return f'    <table id="tenants">\n      <tr>{head}</tr>\n{rows}\n    </table>{more}'


def _schedule(report: status.Report) -> str:
    if report.next_retrain is not None:
        return (f"Next scheduled retrain: <strong>{_e(_when(report.next_retrain, report.now))}"
                f"</strong>, every {report.retrain_seconds // 60} min.")
    if report.redis_ok:
        return ("Next scheduled retrain: not scheduled yet (no worker has started), then "
                f"every {report.retrain_seconds // 60} min.")
    return "Next scheduled retrain: unknown while Redis cannot be reached."


def render(dev: bool, report: status.Report) -> str:
    mode = "development" if dev else "production"
    endpoints = "\n".join(f"      <li><code>{_e(path)}</code>: {_e(text)}</li>"
                          for path, text in ENDPOINTS)
    now, tenants, schedule = report.now, _tenants(report), _schedule(report)
    return f"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>Totara Machine Learning Service</title>
    <style>{_STYLE}</style>
  </head>
  <body>
    <h1>Totara Machine Learning Service</h1>
    <p>Recommendations for Totara Learn. Running in <strong>{mode}</strong> mode.
      Page generated {_e(time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(now)))}.</p>
    <h2>Dependencies</h2>
    <ul id="dependencies">
      <li id="dep-redis">Model store (Redis): {_state(report.redis_ok, report.redis_detail)}</li>
      <li id="dep-broker">Message broker: {_state(report.broker_ok, report.broker_detail)}</li>
    </ul>
    <h2>Tenants</h2>
{tenants}
    <p id="schedule">{schedule}</p>
    <h2>Endpoints</h2>
    <p>Every endpoint except this page, the probes, the metrics and the OpenAPI document
      requires Totara's signed headers (X-Totara-Time, X-Totara-Ml-Key).</p>
    <ul>
{endpoints}
    </ul>
  </body>
</html>
"""


class Home:
    """GET /: the status page, read from Redis on every load (a few pipelined round trips)."""

    def __init__(self, dev: bool, client: Callable[[], redis.Redis],
                 broker_url: Callable[[], str], retrain_minutes: int) -> None:
        self.dev = dev
        self.client = client
        self.broker = status.BrokerProbe(broker_url)
        self.retrain_minutes = retrain_minutes

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        report = status.collect(self.client, self.broker, self.retrain_minutes)
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
