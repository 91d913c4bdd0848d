"""Whatever the query string, a signed request gets HTTP 200 and a well-formed envelope."""

from __future__ import annotations

from urllib.parse import urlencode

import fakeredis
import falcon.testing
import pytest
from api_client import KEY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from publish_fixture import publish_tiny_model

from api.app import create_app
from runtime.config import from_env
from runtime.signing import signed_headers

NAMES = st.sampled_from(["totara_user_id", "item_type", "tenant", "n_items", "totara_item_id",
                         "x", ""])
VALUES = st.one_of(st.integers(-10, 2**70).map(str), st.text(max_size=30),
                   st.sampled_from(["container_course", "engage_article1", "0", "25", "1e3"]))




@pytest.fixture(scope="module")
def client() -> falcon.testing.TestClient:
    # Requests only read: one published model serves every example.
    redis_client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    publish_tiny_model(redis_client)
    settings_ = from_env({"ML_TOTARA_URL": "http://127.0.0.1:9", "ML_TOTARA_KEY": KEY})
    app = create_app(settings_, redis_client, broker_url=lambda: "memory://")
    return falcon.testing.TestClient(app)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/user-items", "/similar-items"]),
       pairs=st.lists(st.tuples(NAMES, VALUES), max_size=6))
def test_any_query_gets_an_envelope(client, path, pairs):
    result = client.simulate_get(path, query_string=urlencode(pairs),
                                 headers=signed_headers(KEY))
    assert result.status_code == 200
    body = result.json
    assert isinstance(body["success"], bool) and isinstance(body["items"], list)
    if not body["success"]:
        assert body["message"] and body["items"] == []
    for item_id, score in body["items"]:
        assert item_id.isdigit() and score[0] in " -" and score[-5] == "."


@settings(max_examples=200, deadline=None)
@given(query=st.fixed_dictionaries({
    "totara_user_id": st.one_of(st.integers(0, 10).map(str), VALUES),
    "item_type": st.one_of(st.sampled_from(["container_course", "engage_microlearning"]),
                           VALUES),
    "tenant": st.one_of(st.just("0"), VALUES),
    "n_items": st.one_of(st.integers(-2, 1002).map(str), VALUES)}))
def test_complete_user_items_queries(client, query):
    result = client.simulate_get("/user-items", query_string=urlencode(query),
                                 headers=signed_headers(KEY))
    assert result.status_code == 200
    body = result.json
    if body["success"]:
        assert len(body["items"]) <= int(query["n_items"])
    else:
        assert body["items"] == [] and body["message"]
