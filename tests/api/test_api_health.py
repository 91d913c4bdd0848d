"""/health-check (contract §2) against a fake Totara, plus the service's own dependencies."""

from __future__ import annotations

import dataclasses
import socket
import time

import pytest
from api_client import KEY
from fake_totara import FakeTotara
from publish_fixture import publish_not_trained, publish_tiny_model

from published import summary


@pytest.fixture
def totara():
    with FakeTotara(KEY) as fake:
        fake.hang_seconds = 3.0
        yield fake


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _health(make_api, settings, url, **options):
    api = make_api(dataclasses.replace(settings, totara_url=url), **options)
    started = time.monotonic()
    result = api.get("/health-check")
    assert result.status_code == 200
    body = result.json
    assert set(body) == {"success", "errors", "totara"}
    assert body["success"] is (body["errors"] == [])
    # Totara prints each value on a line: scalars only.
    assert all(isinstance(v, str | int | float) for v in body["totara"].values()), body
    return api, body, time.monotonic() - started


def test_healthy_with_totara_reachable_and_a_model(make_api, settings, totara):
    summary.append(settings.logs_dir, "hybrid", "0", "Training done", 5, 30, 0.8512, now=1e9)
    summary.append(settings.logs_dir, "hybrid", "0", "Training done", 7, 40, 0.9, now=2e9)
    summary.append(settings.logs_dir, "hybrid", "1", "The number of users or items is too "
                   "small", now=2e9)
    api = make_api(dataclasses.replace(settings, totara_url=totara.url))
    publish_tiny_model(api.redis, "0")
    publish_not_trained(api.redis, "1")
    result = api.get("/health-check")
    body = result.json
    assert body["errors"] == [] and body["success"] is True
    facts = body["totara"]
    assert facts["url"] == totara.url and facts["totara_ip"] == "127.0.0.1"
    assert 0 <= facts["elapsed_seconds"] < 1.5
    assert abs(facts["service_time"] - time.time()) < 5
    assert facts["variance"] <= 1
    assert facts["recommendation_model"] == "true"
    assert facts["redis_reachable"] == "true" and facts["broker_reachable"] == "true"
    assert facts["tenants_published"] == 2
    assert facts["tenant_0_status"] == "trained" and facts["tenant_1_status"] == "not_trained"
    assert facts["tenant_0_version_age_seconds"] < 5
    assert facts["tenant_0_auc"] == 0.87 and facts["tenant_0_precision_at_10"] == 0.31
    assert facts["logs_file_exists"] == "true"
    last = facts["last_recommendation_model_training"]
    assert "\n" not in last and "epochs 7" in last and "tenant 1" in last
    assert "epochs 5" not in last  # only the newest run
    assert ("POST", "/totara/webapi/ajax.php") in totara.requests_seen


def test_variance_is_the_skew_of_the_last_authenticated_request(make_api, settings, totara):
    from runtime.signing import signed_headers

    api = make_api(dataclasses.replace(settings, totara_url=totara.url))
    body = api.get("/health-check", headers=signed_headers(KEY, time.time() - 20)).json
    assert 19 <= body["totara"]["variance"] <= 21


def test_no_model_and_no_log_is_reported_without_error(make_api, settings, totara):
    _, body, _ = _health(make_api, settings, totara.url)
    assert body["errors"] == []
    assert body["totara"]["recommendation_model"] == "false"
    assert body["totara"]["logs_file_exists"] == "false"
    assert "last_recommendation_model_training" not in body["totara"]


def test_totara_unreachable(make_api, settings):
    _, body, elapsed = _health(make_api, settings, f"http://127.0.0.1:{_closed_port()}")
    assert len(body["errors"]) == 1
    assert body["errors"][0].startswith("Unable to communicate with Totara: ")
    assert body["success"] is False and elapsed < 1.5


@pytest.mark.parametrize("mode,start", [
    ("error", "Unable to communicate with Totara, there was an error with the response: "),
    ("bad", "Could not connect to Totara instance. Please check your URL is correct."),
    ("hang", "Timed out trying to connect to Totara (try again in a few seconds): "),
])
def test_totara_answering_badly(make_api, settings, totara, mode, start):
    totara.status_mode = mode
    _, body, elapsed = _health(make_api, settings, totara.url)
    assert [e[:len(start)] for e in body["errors"]] == [start]
    assert elapsed < 1.9  # within Totara's 2 s even when Totara itself hangs


def test_unresolvable_and_missing_hostname(make_api, settings, monkeypatch):
    def no_dns(host):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "gethostbyname", no_dns)
    _, body, _ = _health(make_api, settings, "http://lms.example.invalid")
    assert body["errors"] == ["Unable to resolve the Totara instance hostname: Name or service "
                              "not known"]
    _, body, _ = _health(make_api, settings, "http:///totara")
    assert body["errors"] == ["Unable to get Totara instance hostname"]


def test_redis_and_broker_down_are_errors(make_api, settings, totara, fake_redis):
    fake_redis.connection_pool.connection_kwargs["server"].connected = False
    broker = f"redis://127.0.0.1:{_closed_port()}/0"
    _, body, _ = _health(make_api, settings, totara.url, broker_url=lambda: broker)
    assert body["totara"]["redis_reachable"] == "false"
    assert body["totara"]["broker_reachable"] == "false"
    assert any(e.startswith("Unable to reach the model store (Redis)") for e in body["errors"])
    assert any(e.startswith("Unable to connect to the message broker") for e in body["errors"])


def test_stale_or_broken_model_is_an_error(make_api, settings, totara):
    api = make_api(dataclasses.replace(settings, totara_url=totara.url))
    publish_tiny_model(api.redis, "0", trained_at=time.time() - 5 * 86400)
    body = api.get("/health-check").json
    assert body["totara"]["tenant_0_version_age_seconds"] > 4 * 86400
    assert len(body["errors"]) == 1 and "tenant 0" in body["errors"][0]
    meta = f"ml:{{0}}:v:{body['totara']['tenant_0_version']}:meta"
    api.redis.hset(meta, mapping={"trained_at": time.time(), "auc": "0.31"})
    body = api.get("/health-check").json
    assert len(body["errors"]) == 1 and "worse than chance" in body["errors"][0]


def test_last_run_outcome(make_api, settings, totara):
    api = make_api(dataclasses.replace(settings, totara_url=totara.url))
    publish_tiny_model(api.redis, "0", trained_at=time.time() - 5 * 86400)
    # An unchanged export is skipped, not republished: an old version is then no problem.
    api.redis.hset("ml:{0}:last_run", mapping={"status": "skipped", "at": time.time() - 60,
                                               "message": "this export is already published"})
    body = api.get("/health-check").json
    assert body["errors"] == []
    assert body["totara"]["tenant_0_last_run"] == "skipped"
    assert 59 <= body["totara"]["tenant_0_last_run_age_seconds"] <= 62
    api.redis.hset("ml:{0}:last_run", mapping={"status": "failed", "at": time.time(),
                                               "message": "ModelStoreError: disk\nfull"})
    body = api.get("/health-check").json
    assert body["errors"] == ["The last training run of tenant 0 failed: ModelStoreError: "
                              "disk full"]
