"""/user-items and /similar-items over a damaged list value in Redis: answered as if the value
were absent (fold-in, else popularity; "no such item"; no popularity list), logged once per
version, never a 500."""

from __future__ import annotations

import json
import re

import fakeredis
import falcon.testing
import pytest
from api_client import KEY, Api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from publish_fixture import POPULAR, add_recent_events, publish_tiny_model

from api import lists
from api.reader import Reader
from published import keys
from runtime.config import Settings, from_env
from runtime.items import ITEM_TYPES, TYPE_CODE

ENTRY = re.compile(r'\["\d+", "[ -](\d+\.\d{4}|nan|inf)"\]')
COURSE = TYPE_CODE["container_course"]
# Any bytes, and bytes that start like a value of format 1 (so that more get past the first check)
VALUES = st.one_of(st.binary(max_size=300), st.binary(max_size=200).map(lambda b: b"\x01" + b))


def _user_value(api: Api, user: int) -> tuple[str, str]:
    version = api.redis.get(keys.current("0")).decode()
    return keys.user_bucket("0", version, user), str(user)


def _popular_items(type_code: int, n: int = 25) -> list[list[str]]:
    ids, scores = POPULAR.get(type_code, ([], []))
    return [[str(i), f"{s: .4f}"] for i, s in zip(ids[:n], scores[:n], strict=True)]


@pytest.mark.parametrize("damage", [b"", b"\x01", b"\x07garbage", b"\x01\x05\x03\x00",
                                    b"\x02\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
                                    "truncated", "extended"])
def test_a_damaged_published_list_is_answered_from_popularity_and_logged_once(api, log_lines,
                                                                             damage):
    publish_tiny_model(api.redis)
    bucket, field = _user_value(api, 1)
    stored = api.redis.hget(bucket, field)
    if damage == "truncated":
        damage = stored[:-3]
    elif damage == "extended":
        damage = stored + b"\x00"
    api.redis.hset(bucket, field, damage)
    logged = log_lines()
    for _ in range(3):
        result = api.user_items(user=1, item_type="container_course")
        assert result.status_code == 200
        assert result.json == {"success": True, "items": _popular_items(COURSE)}
    assert api.counters.popular == 3
    warnings = [line for line in logged.getvalue().splitlines() if "WARNING" in line]
    assert len(warnings) == 1, logged.getvalue()
    assert "published lists of user 1 cannot be read" in warnings[0]
    assert "Traceback" not in logged.getvalue()


def test_a_damaged_published_list_with_recent_events_is_folded_in(api):
    publish_tiny_model(api.redis)
    bucket, field = _user_value(api, 1)
    api.redis.hset(bucket, field, b"\x01\x05")
    add_recent_events(api.redis, "0", 1, [("container_course1", 1), ("container_course2", 1)])
    result = api.user_items(user=1, item_type="container_course")
    assert result.json["success"] is True and result.json["items"]
    assert api.counters.fold_in == 1


def test_damaged_similar_items_answer_no_such_item_and_a_damaged_popularity_list_nothing(api):
    publish_tiny_model(api.redis)
    version = api.redis.get(keys.current("0")).decode()
    api.redis.hset(keys.item_bucket("0", version, 1), "container_course1", b"\x01\x01\x00")
    api.redis.set(keys.popular("0", version), b"\x01\x05")  # read with the version, once
    assert api.similar_items(item="container_course1").json == {
        "success": False, "message": "Bad request: no such item id", "items": []}
    assert api.user_items(user=77).json == {"success": True, "items": []}


def test_the_explorer_reads_a_damaged_list_as_absent_too(fake_redis):
    publish_tiny_model(fake_redis)
    reader = Reader(lambda: fake_redis, pointer_ttl=0.0)
    version = reader.version("0")
    fake_redis.hset(keys.user_bucket("0", version.version, 1), "1", b"\x01\x05\x01")
    found = lists.user_list(reader, version, 1, COURSE, 10)
    assert found.source == lists.Source.POPULAR
    assert list(found.ids) == POPULAR[COURSE][0]
    fake_redis.hset(keys.item_bucket("0", version.version, 1), "container_course1", b"\x01")
    assert lists.similar_list(reader, version, "container_course1") is None


@pytest.fixture(scope="module")
def app_settings() -> Settings:
    return from_env({"ML_TOTARA_URL": "http://127.0.0.1:9", "ML_TOTARA_KEY": KEY})


@pytest.fixture(scope="module")
def shared_api(app_settings) -> tuple[Api, fakeredis.FakeRedis, str]:
    redis_client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    publish_tiny_model(redis_client)
    api = Api(app_settings, redis_client)
    return api, redis_client, redis_client.get(keys.current("0")).decode()


def _assert_valid_answer(result: falcon.testing.Result) -> None:
    assert result.status_code == 200
    body = json.loads(result.content)
    assert set(body) in ({"success", "items"}, {"success", "message", "items"})
    if body["success"]:
        assert all(ENTRY.fullmatch(json.dumps(item)) for item in body["items"]), body
    else:
        assert body["message"] and body["items"] == []


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=VALUES, item_type=st.sampled_from(ITEM_TYPES), n_items=st.integers(1, 1000))
def test_whatever_bytes_a_list_value_holds_the_answer_is_a_valid_envelope(shared_api, value,
                                                                         item_type, n_items):
    api, redis_client, version = shared_api
    redis_client.hset(keys.user_bucket("0", version, 1), "1", value)
    redis_client.hset(keys.item_bucket("0", version, 1), "engage_article1", value)
    _assert_valid_answer(api.user_items(user=1, item_type=item_type, n_items=n_items))
    _assert_valid_answer(api.similar_items(item="engage_article1", n_items=n_items))


@settings(max_examples=100, deadline=None)
@given(value=VALUES, item_type=st.sampled_from(ITEM_TYPES), n_items=st.integers(1, 1000))
def test_whatever_bytes_the_popularity_list_holds_a_cold_user_gets_a_valid_envelope(
        shared_api, app_settings, value, item_type, n_items):
    _, redis_client, version = shared_api
    redis_client.set(keys.popular("0", version), value)
    fresh = Api(app_settings, redis_client)  # the popularity list is read once per version
    _assert_valid_answer(fresh.user_items(user=77, item_type=item_type, n_items=n_items))
