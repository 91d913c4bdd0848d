"""GET /metrics: open, Prometheus' text format, requests by endpoint and outcome, latency,
cold-user answers and per-tenant gauges read from Redis."""

from __future__ import annotations

import time

import pytest
import redis
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from publish_fixture import publish_not_trained, publish_tiny_model

from api import connection, metrics
from published import keys


def _count(endpoint: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("totara_ml_http_requests_total",
                                     {"endpoint": endpoint, "outcome": outcome}) or 0.0


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_needs_no_signature_and_is_prometheus_text(api):
    answer = api.get("/metrics", headers={})
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    names = {family.name for family in text_string_to_metric_families(answer.text)}
    assert {"totara_ml_http_requests", "totara_ml_http_request_duration_seconds",
            "totara_ml_cold_user_answers", "totara_ml_redis_up"} <= names


def test_each_failure_message_kind_and_401_are_counted_apart(api):
    publish_tiny_model(api.redis, "0")
    publish_not_trained(api.redis, "4")
    cases = [
        (lambda: api.user_items(user=1), "user_items", "success"),
        (lambda: api.user_items(tenant=9), "user_items", "no_tenant"),
        (lambda: api.user_items(tenant=4), "user_items", "not_trained"),
        (lambda: api.user_items(item_type="nonsense"), "user_items", "no_type"),
        (lambda: api.user_items(n_items="x"), "user_items", "bad_request"),
        (lambda: api.user_items(user="abc"), "user_items", "no_user"),
        (lambda: api.similar_items(item="engage_article99"), "similar_items", "no_item"),
        (lambda: api.similar_items(item="engage_article1"), "similar_items", "success"),
        (lambda: api.get("/user-items", headers={}), "user_items", "unauthorized"),
        (lambda: api.get("/nowhere"), "other", "not_found"),
    ]
    for call, endpoint, outcome in cases:
        before = _count(endpoint, outcome)
        call()
        assert _count(endpoint, outcome) == before + 1, (endpoint, outcome)


def test_not_ready_before_any_model_and_latency_is_observed(api):
    before = REGISTRY.get_sample_value("totara_ml_http_request_duration_seconds_count",
                                       {"endpoint": "user_items"}) or 0.0
    ready_before = _count("user_items", "not_ready")
    api.user_items()
    assert _count("user_items", "not_ready") == ready_before + 1
    assert REGISTRY.get_sample_value("totara_ml_http_request_duration_seconds_count",
                                     {"endpoint": "user_items"}) == before + 1


def test_redis_down_is_counted_as_unavailable(make_api):
    # A refused connection, with the API's own retry policy (one immediate retry).
    broken = redis.Redis(host="127.0.0.1", port=1, **connection.client_options())
    api = make_api(redis_client=broken)
    before = _count("user_items", "unavailable")
    assert api.user_items().status_code == 503
    assert _count("user_items", "unavailable") == before + 1
    samples = _samples(api.get("/metrics").text)
    assert samples[("totara_ml_redis_up", ())] == 0


def test_cold_user_answers_are_prometheus_counters_by_source(api):
    publish_tiny_model(api.redis, "0")
    before = REGISTRY.get_sample_value("totara_ml_cold_user_answers_total",
                                       {"source": "popular"}) or 0.0
    api.user_items(user=777)
    assert api.counters.popular == 1
    assert REGISTRY.get_sample_value("totara_ml_cold_user_answers_total",
                                     {"source": "popular"}) == before + 1


def test_tenant_gauges_come_from_redis(api):
    publish_tiny_model(api.redis, "0", trained_at=time.time() - 120)
    api.redis.hset(keys.meta("0", api.redis.get(keys.current("0")).decode()),
                   "incremental_runs", "2")
    publish_not_trained(api.redis, "4")
    api.redis.hset(keys.last_run("0"), mapping={"status": "failed", "at": time.time()})
    api.redis.set(keys.SCHEDULE_LEADER, 1_700_000_000)
    samples = _samples(api.get("/metrics").text)
    age = samples[("totara_ml_tenant_published_version_age_seconds", (("tenant", "0"),))]
    assert 119 <= age < 130
    assert samples[("totara_ml_tenant_trained", (("tenant", "0"),))] == 1
    assert samples[("totara_ml_tenant_trained", (("tenant", "4"),))] == 0
    assert samples[("totara_ml_tenant_validation_score",
                    (("metric", "auc"), ("tenant", "0")))] == pytest.approx(0.87)
    assert samples[("totara_ml_tenant_export_size",
                    (("tenant", "0"), ("what", "interactions")))] == 12
    assert samples[("totara_ml_tenant_last_run_ok", (("tenant", "0"),))] == 0
    assert samples[("totara_ml_tenant_incremental_runs", (("tenant", "0"),))] == 2
    assert ("totara_ml_tenant_incremental_runs", (("tenant", "4"),)) not in samples
    # The failed run is not a success: the last success is the published training.
    success = samples[("totara_ml_tenant_last_success_timestamp_seconds", (("tenant", "0"),))]
    assert success == pytest.approx(time.time() - 120, abs=5)
    assert samples[("totara_ml_next_retrain_timestamp_seconds", ())] == 1_700_000_000 + 86400
    assert samples[("totara_ml_redis_up", ())] == 1


@pytest.mark.parametrize("status, body, expected", [
    (200, b'{"success": true, "items": []}', "success"),
    (200, b'{"success": false, "message": "Bad request: no such tenant (tenant must be a '
          b'whole number, 0 for none)", "items": []}', "no_tenant"),
    (200, b'{"success": false, "message": "Message: The model for tenant 3 is not trained, '
          b'probably for insufficient data", "items": []}', "not_trained"),
    (200, b"not json", "failure"),
    (500, None, "error"),
    (405, None, "method_not_allowed"),
    (400, None, "client_error"),
])
def test_outcome_is_read_from_the_status_and_envelope(status, body, expected):
    assert metrics.outcome("user_items", status, body) == expected


def test_unknown_paths_share_one_label(api):
    before = _count("other", "unauthorized")
    for index in range(5):
        api.get(f"/scan-{index}", headers={})
    assert _count("other", "unauthorized") == before + 5
