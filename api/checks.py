"""The individual checks behind /health-check: Totara, Redis, the broker, the training log.

Each returns scalar facts for the ``totara`` object and problem texts for ``errors`` (Totara
judges health only by ``errors`` being empty). The Totara texts are the original service's.
"""

from __future__ import annotations

import csv
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis
import requests

from published import overview

Facts = dict[str, str | int | float]

TOTARA_TIMEOUT = 1.5
BROKER_TIMEOUT = 1.0
GRAPHQL_STATUS = {"operationName": "totara_webapi_status_nosession", "variables": {},
                  "extensions": {}}
# Tenants listed one by one in the answer; Totara prints every key as a line.
MAX_TENANTS_REPORTED = 100
# A validation AUC below this ranks worse than chance: the model is broken, not just weak.
MIN_AUC = 0.5
SUMMARY_FILE = "train_summary.log"
MAX_SUMMARY_CHARS = 1000


def totara(url: str | None, timeout: float = TOTARA_TIMEOUT) -> tuple[Facts, list[str]]:
    """Resolve the Totara host and call its GraphQL status operation, as the original does."""
    facts: Facts = {"url": url or ""}
    host = urlsplit(url).hostname if url else None
    if not host:
        return facts, ["Unable to get Totara instance hostname"]
    try:
        facts["totara_ip"] = socket.gethostbyname(host)
    except OSError as exc:
        reason = exc.args[-1] if exc.args else exc
        return facts, [f"Unable to resolve the Totara instance hostname: {reason}"]
    started = time.monotonic()
    try:
        answer = requests.post(f"{url}/totara/webapi/ajax.php", json=GRAPHQL_STATUS,
                               timeout=timeout)
        facts["elapsed_seconds"] = round(time.monotonic() - started, 3)
        answer.raise_for_status()
        payload = answer.json()
    except requests.HTTPError as exc:
        return facts, ["Unable to communicate with Totara, there was an error with the "
                       f"response: {exc}"]
    except requests.Timeout as exc:
        return facts, [f"Timed out trying to connect to Totara (try again in a few seconds): "
                       f"{exc}"]
    except requests.RequestException as exc:  # includes a body that is not JSON
        return facts, [f"Unable to communicate with Totara: {exc}"]
    if not _status_ok(payload):
        return facts, ["Could not connect to Totara instance. Please check your URL is correct."]
    return facts, []


def _status_ok(payload: object) -> bool:
    # ajax.php answers a single operation with an object, a batch with a list of them.
    if isinstance(payload, list):
        payload = payload[0] if payload else None
    try:
        return payload["data"]["totara_webapi_status"]["status"] == "ok"
    except (TypeError, KeyError):
        return False


def broker(url: str, timeout: float = BROKER_TIMEOUT) -> str | None:
    """None when a connection to the message broker can be made, else the problem."""
    import kombu  # only the health check needs it; keeps worker start-up lean

    options = {"socket_connect_timeout": timeout, "socket_timeout": timeout, "max_retries": 0}
    try:
        with kombu.Connection(url, connect_timeout=timeout, transport_options=options) as conn:
            conn.ensure_connection(max_retries=0, timeout=timeout)
    except Exception as exc:  # kombu raises transport-specific errors
        return f"Unable to connect to the message broker: {exc}"
    return None


_META_FIELDS = ("status", "trained_at", "auc", "precision_at_10")
_RUN_FIELDS = ("status", "at", "message")


def store(client: redis.Redis, retrain_minutes: int,
          now: float | None = None) -> tuple[Facts, list[str]]:
    """Redis reachability and, per published tenant, its version's status, age and quality and
    the outcome of its latest training run."""
    now = time.time() if now is None else now
    try:
        seen = overview.read(client, _META_FIELDS, _RUN_FIELDS, MAX_TENANTS_REPORTED)
    except redis.RedisError as exc:
        return ({"redis_reachable": "false", "recommendation_model": "false"},
                [f"Unable to reach the model store (Redis): {exc}"])
    facts: Facts = {"redis_reachable": "true", "tenants_published": seen.total}
    errors: list[str] = []
    trained = False
    for state in seen.tenants:
        meta = [state.meta[f] for f in _META_FIELDS]
        run = [state.run[f] for f in _RUN_FIELDS]
        trained = trained or (bool(state.version) and meta[0] == "trained")
        facts.update(_tenant_facts(state.tenant, state.version, meta, run, now))
        errors += _tenant_problems(state.tenant, meta, run, now, 2 * retrain_minutes * 60)
    facts["recommendation_model"] = "true" if trained else "false"
    return facts, errors


def _tenant_facts(tenant: str, version: str | None, meta: list[str], run: list[str],
                  now: float) -> Facts:
    prefix = f"tenant_{tenant}_"
    facts: Facts = {}
    if version:
        status, trained_at, auc, precision = meta
        facts[prefix + "version"] = version
        facts[prefix + "status"] = status or "unknown"
        if _age(trained_at, now) is not None:
            facts[prefix + "version_age_seconds"] = _age(trained_at, now)
        for name, raw in (("auc", auc), ("precision_at_10", precision)):
            if status == "trained" and _number(raw) is not None:
                facts[prefix + name] = round(_number(raw), 4)
    if run[0]:
        facts[prefix + "last_run"] = run[0]
        if _age(run[1], now) is not None:
            facts[prefix + "last_run_age_seconds"] = _age(run[1], now)
    return facts


def _tenant_problems(tenant: str, meta: list[str], run: list[str], now: float,
                     stale_after: float) -> list[str]:
    problems = []
    # A run that found the export unchanged publishes nothing: the pipeline is alive as long
    # as runs happen, whatever the version's age.
    ages = [a for a in (_age(meta[1], now), _age(run[1], now)) if a is not None]
    if ages and min(ages) > stale_after:
        problems.append(f"No training run for tenant {tenant} in {min(ages) // 3600} hours, "
                        "more than twice the retraining interval")
    if run[0] == "failed":
        problems.append(f"The last training run of tenant {tenant} failed: "
                        + " ".join(run[2].split())[:300])
    auc = _number(meta[2])
    if meta[0] == "trained" and auc is not None and auc < MIN_AUC:
        problems.append(f"The model of tenant {tenant} ranks worse than chance "
                        f"(validation AUC {auc:.3f})")
    return problems


def _number(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value == value else None  # NaN says nothing


def _age(trained_at: str, now: float) -> int | None:
    value = _number(trained_at)
    return None if value is None else max(0, int(now - value))


def training_summary(logs_dir: Path) -> Facts:
    """``logs_file_exists`` and a one-line summary of the newest run in train_summary.log."""
    path = logs_dir / SUMMARY_FILE
    if not path.is_file():
        return {"logs_file_exists": "false"}
    try:
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        return {"logs_file_exists": "true",
                "last_recommendation_model_training": f"unreadable: {exc.strerror}"}
    if not rows:
        return {"logs_file_exists": "true", "last_recommendation_model_training": "none"}
    newest = rows[-1].get("TIMESTAMP") or ""
    parts = [_summary_row(row) for row in rows if (row.get("TIMESTAMP") or "") == newest]
    text = f"{newest}: " + "; ".join(parts)
    if len(text) > MAX_SUMMARY_CHARS:
        text = text[:MAX_SUMMARY_CHARS - 3] + "..."
    return {"logs_file_exists": "true", "last_recommendation_model_training": text}


def _summary_row(row: dict[str, str | None]) -> str:
    def field(name: str) -> str:
        return " ".join((row.get(name) or "").split())  # one line, whatever the CSV held

    text = f"tenant {field('TENANT_ID')} ({field('ALGORITHM')}): {field('MSG')}"
    details = [f"{label} {field(name)}" for label, name in
               (("epochs", "EPOCHS"), ("components", "N_EMBEDDINGS"), ("score", "SCORE"))
               if field(name)]
    return text + (" [" + ", ".join(details) + "]" if details else "")
