"""Redis stopped, hung and restarted empty under a running API (gunicorn) and worker.

While Redis is away every answer comes within Totara's 2 s and is a contract envelope or a 503,
never a 500; /readyz and /livez hold. When Redis comes back empty the worker republishes
the saved models by itself, or ``python -m recommender restore`` does, and the API answers what it
answered before, without being restarted.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import requests
from conftest import KEY
from servers import ROOT, Api, start_worker, wait_for

from published import keys
from recommender import pipeline
from recommender.ingest import export
from recommender.model.params import TrainParams
from runtime import config
from runtime.signing import signed_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOTARA_TIMEOUT = (1, 2)  # Totara's curl: 1 s to connect, 2 s in all
FAST = TrainParams(components=8, max_epochs=4, patience=1, validation_users=200)


def totara_get(url: str, path: str, **params: object) -> requests.Response:
    return requests.get(url + path, params=params, headers=signed_headers(KEY),
                        timeout=TOTARA_TIMEOUT)


def tenant_queries(settings: config.Settings, tenant: str) -> list[tuple[str, dict]]:
    """A user-items and a similar-items request that the tenant's export can answer."""
    data = export.load_tenant(settings.export_dir, tenant)
    article = next(k for k in data.items.keys if k.startswith("engage_article"))
    return [("/user-items", {"totara_user_id": int(data.users.ids[3]),
                             "item_type": "container_course", "tenant": tenant, "n_items": 10}),
            ("/similar-items", {"totara_item_id": article, "tenant": tenant, "n_items": 5})]


def answers(url: str, queries: list[tuple[str, dict[str, object]]]) -> list[bytes]:
    return [totara_get(url, path, **params).content for path, params in queries]


def assert_degrades_cleanly(url: str, queries: list[tuple[str, dict[str, object]]],
                            seconds: float) -> dict[int, int]:
    """For ``seconds``: every answer within 2 s, a 503 or a 200 envelope, never a 500."""
    seen: dict[int, int] = {}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for path, params in [*queries, ("/health-check", {})]:
            started = time.monotonic()
            answer = totara_get(url, path, **params)  # raises on a hang past 2 s
            assert time.monotonic() - started < 2.0
            seen[answer.status_code] = seen.get(answer.status_code, 0) + 1
            assert answer.status_code in (200, 503), answer.text
            body = answer.json()
            if path == "/health-check":
                assert answer.status_code == 200 and body["errors"]
                assert body["totara"]["redis_reachable"] == "false"
            elif answer.status_code == 200:  # from a pointer cached a moment before the fault
                assert set(body) in ({"success", "items"}, {"success", "message", "items"})
            else:
                assert body == {"error": "true", "msg": "Service unavailable: the model store "
                                                        "(Redis) cannot be reached"}
        # Both probes hold: this process answers Totara (the 503s above), so it stays in the
        # Service; a Redis outage must not empty it and leave Totara with the ingress's 502.
        assert requests.get(url + "/livez", timeout=TOTARA_TIMEOUT).status_code == 200
        assert requests.get(url + "/readyz", timeout=TOTARA_TIMEOUT).status_code == 200
        # Prometheus scrapes go on too (the tenant gauges say Redis is down).
        assert requests.get(url + "/metrics", timeout=TOTARA_TIMEOUT).status_code == 200
    return seen


@pytest.fixture
def trained(fault_env, private_redis):
    """Both tenants trained into the private Redis and saved in ML_MODELS_DIR."""
    env = {**fault_env, "ML_REDIS_URL": private_redis.url}
    settings = config.from_env(env)
    client = private_redis.client()
    for tenant in ("0", "1"):
        assert pipeline.train_tenant(settings, client, tenant,
                                     params=FAST).status == "published"
    return env, client, tenant_queries(settings, "0") + tenant_queries(settings, "1")


def test_redis_hung_then_killed_then_back_empty_is_healed_by_the_worker(
        trained, private_redis, shared_broker, processes, tmp_path):
    env, client, queries = trained
    url_broker, prefix = shared_broker
    env = {**env, "ML_BROKER_URL": url_broker, "ML_BROKER_PREFIX": prefix}
    api = Api(env, tmp_path / "api.log").start()
    processes.append(api.process)
    processes.append(start_worker(env, tmp_path / "worker.log"))
    before = answers(api.url, queries)
    assert all(b'"success": true' in body for body in before)
    assert requests.get(api.url + "/readyz", timeout=2).status_code == 200

    # Given Redis hangs (SIGSTOP: connections open, nothing answers)
    private_redis.pause()
    # Then every answer still comes within 2 s, as an envelope or a 503
    hung = assert_degrades_cleanly(api.url, queries, seconds=3)
    private_redis.resume()
    assert answers(api.url, queries) == before  # and it answers again at once

    # Given Redis is killed (connections reset, then refused)
    private_redis.kill()
    refused = assert_degrades_cleanly(api.url, queries, seconds=3)
    assert hung.get(503) and refused.get(503)

    # When it comes back empty on the same address
    private_redis.start()
    # Then the worker republishes the saved models and the API serves the same lists again
    wait_for(lambda: answers(api.url, queries) == before, 30, "the same answers after Redis "
             "came back empty")
    assert requests.get(api.url + "/readyz", timeout=2).status_code == 200
    assert private_redis.client().smembers(keys.TENANTS) == {b"0", b"1"}
    log = (tmp_path / "worker.log").read_text()
    assert "has no published model; republishing the saved one" in log
    assert processes[1].poll() is None  # the worker lived through it
    api.stop()
    assert " 500 " not in (tmp_path / "api.log").read_text()


def test_without_a_worker_the_restore_command_heals_an_emptied_redis(
        trained, private_redis, processes, tmp_path):
    env, client, queries = trained
    api = Api(env, tmp_path / "api.log").start()
    processes.append(api.process)
    before = answers(api.url, queries)
    # Given Redis restarted empty and no worker runs
    private_redis.kill()
    private_redis.start()
    time.sleep(1.1)  # the API's cached pointers expire
    empty = totara_get(api.url, "/user-items", **queries[0][1]).json()
    assert empty == {"success": False, "message": "The recommender model is not ready yet",
                     "items": []}
    # When the operator runs the restore command
    restore = subprocess.run([sys.executable, "-m", "recommender", "restore"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert restore.returncode == 0, restore.stdout + restore.stderr
    # Then the API answers as before, without a restart
    wait_for(lambda: answers(api.url, queries) == before, 5, "the same answers after restore")
