"""/health-check (contract §2, authenticated) and /livez, /readyz (open, for load balancers).

The health check runs the broker check in a thread while it calls Totara, so that the whole
answer stays within Totara's 2 s budget even when one dependency hangs for its full timeout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import falcon
import redis

from api import checks
from api.auth import AuthState
from runtime.config import Settings

# Waiting for the broker beyond its own timeout means its check is stuck (DNS, say).
BROKER_GRACE = 0.3


class HealthCheck:
    """GET /health-check: always 200; healthy exactly when ``errors`` is empty."""

    def __init__(self, settings: Settings, client: Callable[[], redis.Redis], auth: AuthState,
                 broker_url: Callable[[], str]) -> None:
        self.settings = settings
        self.client = client
        self.auth = auth
        self.broker_url = broker_url

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="health")
        broker = pool.submit(self._broker)
        try:
            facts, errors = checks.totara(self.settings.totara_url)
            now = int(time.time())
            facts["service_time"] = now
            if self.auth.last_time is not None:
                facts["variance"] = abs(now - self.auth.last_time)
            store_facts, store_errors = self._store()
            facts.update(store_facts)
            errors += store_errors
            facts.update(checks.training_summary(self.settings.logs_dir))
            try:
                problem = broker.result(timeout=checks.BROKER_TIMEOUT + BROKER_GRACE)
            except FutureTimeout:
                problem = "Unable to connect to the message broker: timed out"
            facts["broker_reachable"] = "false" if problem else "true"
            if problem:
                errors.append(problem)
        finally:
            pool.shutdown(wait=False)
        resp.data = json.dumps({"success": not errors, "errors": errors,
                                "totara": facts}).encode("utf-8")
        resp.content_type = falcon.MEDIA_JSON

    def _store(self) -> tuple[checks.Facts, list[str]]:
        try:
            client = self.client()
        except (redis.RedisError, OSError, RuntimeError) as exc:  # embedded server won't start
            return ({"redis_reachable": "false", "recommendation_model": "false"},
                    [f"Unable to reach the model store (Redis): {exc}"])
        return checks.store(client, self.settings.retrain_freq_minutes)

    def _broker(self) -> str | None:
        try:
            url = self.broker_url()
        except Exception as exc:  # a misconfigured broker URL is a finding, not a crash
            return f"Unable to connect to the message broker: {exc}"
        return checks.broker(url)


class Livez:
    """GET /livez: the process answers. Nothing else is checked or disclosed."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "ok"

    on_head = on_get  # some load balancers probe with HEAD; Falcon drops the body


class Readyz:
    """GET /readyz: this process can answer Totara, so it belongs behind the load balancer.

    Deliberately independent of Redis and of what is published: without Redis the API still
    answers the contract's JSON (a 503 envelope, "not ready yet" before the first training), and
    that answer must reach Totara rather than a load balancer's own 502 because no pod is ready.
    A process that cannot run the app does not answer at all, which is what the probe catches.
    """

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = "ready"

    on_head = on_get
