"""The individual checks behind /health-check: Totara, Redis, the broker, the training log.

Each returns scalar facts for the ``totara`` object and problem texts for ``errors`` (Totara
judges health only by ``errors`` being empty). The Totara texts are the original service's.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis
import requests

from published import overview, runs, summary
from published.runs import LastRun, RunMeta, RunStatus, VersionStatus
from runtime.publictext import public

Facts = dict[str, str | int | float]

TOTARA_TIMEOUT = 1.5
BROKER_TIMEOUT = 1.0
GRAPHQL_STATUS = {"operationName": "totara_webapi_status_nosession", "variables": {},
                  "extensions": {}}
# Tenants listed one by one in the answer; Totara prints every key as a line.
MAX_TENANTS_REPORTED = 100
# A validation AUC below this ranks worse than chance: the model is broken, not just weak.
MIN_AUC = 0.5
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
    # The original's texts, with requests' message less its URL and host (runtime.publictext).
    except requests.HTTPError as exc:
        return facts, ["Unable to communicate with Totara, there was an error with the "
                       f"response: {public(str(exc))}"]
    except requests.Timeout as exc:
        return facts, [f"Timed out trying to connect to Totara (try again in a few seconds): "
                       f"{public(str(exc))}"]
    except requests.RequestException as exc:  # includes a body that is not JSON
        return facts, [f"Unable to communicate with Totara: {public(str(exc))}"]
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
    """None when a connection to the message broker can be made, else the problem. Failover
    alternates (``url1;url2``) share the timeout: the broker is up when any of them answers."""
    import kombu  # only the health check needs it; keeps worker start-up lean

    alternates = url.split(";")
    each = timeout / len(alternates)
    options = {"socket_connect_timeout": each, "socket_timeout": each, "max_retries": 0}
    problem = None
    for alternate in alternates:
        try:
            with kombu.Connection(alternate, connect_timeout=each,
                                  transport_options=options) as conn:
                conn.ensure_connection(max_retries=0, timeout=each)
            return None
        except Exception as exc:  # kombu raises transport-specific errors
            problem = problem or f"Unable to connect to the message broker: {public(str(exc))}"
    return problem


def store(client: redis.Redis, retrain_minutes: int,
          now: float | None = None) -> tuple[Facts, list[str]]:
    """Redis reachability and, per published tenant, its version's status, age and quality and
    the outcome of its latest training run."""
    now = time.time() if now is None else now
    try:
        seen = overview.read(client, runs.FIELDS, runs.RUN_FIELDS, MAX_TENANTS_REPORTED)
    except redis.RedisError as exc:
        return ({"redis_reachable": "false", "recommendation_model": "false"},
                [f"Unable to reach the model store (Redis): {public(str(exc))}"])
    facts: Facts = {"redis_reachable": "true", "tenants_published": seen.total}
    errors: list[str] = []
    trained = False
    for state in seen.tenants:
        meta, run = RunMeta.from_fields(state.meta), LastRun.from_fields(state.run)
        trained = trained or (bool(state.version) and meta.status == VersionStatus.TRAINED)
        facts.update(_tenant_facts(state.tenant, state.version, meta, run, now))
        errors += _tenant_problems(state.tenant, meta, run, now, 2 * retrain_minutes * 60)
    facts["recommendation_model"] = "true" if trained else "false"
    return facts, errors


def _tenant_facts(tenant: str, version: str | None, meta: RunMeta, run: LastRun,
                  now: float) -> Facts:
    prefix = f"tenant_{tenant}_"
    facts: Facts = {}
    if version:
        facts[prefix + "version"] = version
        facts[prefix + "status"] = meta.status.value if meta.status else "unknown"
        if meta.trained_at is not None:
            facts[prefix + "version_age_seconds"] = _age(meta.trained_at, now)
        for name, value in (("auc", meta.auc), ("precision_at_10", meta.precision_at_10)):
            if meta.status == VersionStatus.TRAINED and value is not None:
                facts[prefix + name] = round(value, 4)
    if run.status:
        facts[prefix + "last_run"] = run.status.value
        if run.at is not None:
            facts[prefix + "last_run_age_seconds"] = _age(run.at, now)
    return facts


def _tenant_problems(tenant: str, meta: RunMeta, run: LastRun, now: float,
                     stale_after: float) -> list[str]:
    problems = []
    # A run that found the export unchanged publishes nothing: the pipeline is alive as long
    # as runs happen, whatever the version's age.
    ages = [_age(t, now) for t in (meta.trained_at, run.at) if t is not None]
    if ages and min(ages) > stale_after:
        problems.append(f"No training run for tenant {tenant} in {min(ages) // 3600} hours, "
                        "more than twice the retraining interval")
    if run.status == RunStatus.FAILED:
        problems.append(f"The last training run of tenant {tenant} failed: "
                        + public(" ".join(run.message.split()))[:300])
    if meta.status == VersionStatus.TRAINED and meta.auc is not None and meta.auc < MIN_AUC:
        problems.append(f"The model of tenant {tenant} ranks worse than chance "
                        f"(validation AUC {meta.auc:.3f})")
    return problems


def _age(stamp: float, now: float) -> int:
    return max(0, int(now - stamp))


def training_summary(logs_dir: Path) -> Facts:
    """``logs_file_exists`` and a one-line summary of the newest run in train_summary.log."""
    if not (logs_dir / summary.FILE_NAME).is_file():
        return {"logs_file_exists": "false"}
    try:
        rows = summary.read(logs_dir)  # skips what is not a row, whatever the file holds
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

    text = f"tenant {field('TENANT_ID')} ({field('ALGORITHM')}): {public(field('MSG'))}"
    details = [f"{label} {field(name)}" for label, name in
               (("epochs", "EPOCHS"), ("components", "N_EMBEDDINGS"), ("score", "SCORE"))
               if field(name)]
    return text + (" [" + ", ".join(details) + "]" if details else "")
