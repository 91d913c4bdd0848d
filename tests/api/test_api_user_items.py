"""Contract §2 /user-items: envelopes, formatting, the error table in its order."""

from __future__ import annotations

import pytest
from publish_fixture import (
    POPULAR,
    USER_LISTS,
    publish_not_trained,
    publish_tiny_model,
)

from api import envelope
from runtime.items import ITEM_TYPES, TYPE_CODE


def failure(message):
    return {"success": False, "message": message, "items": []}


def test_published_list_with_exact_formatting(api):
    publish_tiny_model(api.redis)
    result = api.user_items(user=1, item_type="container_course", n_items=25)
    assert result.status_code == 200
    assert result.headers["content-type"] == "application/json"
    assert result.json == {"success": True,
                           "items": [["3", " 0.8123"], ["1", " 0.5000"], ["2", "-0.0456"]]}
    # The exact bytes: Totara's PHP json_decode does not care, but keep the original's shape.
    assert result.text == ('{"success": true, "items": [["3", " 0.8123"], ["1", " 0.5000"], '
                           '["2", "-0.0456"]]}')


def test_n_items_truncates_and_more_than_stored_gives_what_exists(api):
    publish_tiny_model(api.redis)
    assert [i for i, _ in api.user_items(item_type="engage_article", n_items=2).json["items"]
            ] == ["2", "5"]
    items = api.user_items(item_type="engage_article", n_items=1000).json["items"]
    assert items == [["2", " 1.5000"], ["5", " 0.2500"], ["1", " 0.0000"], ["6", "-2.0000"]]


@pytest.mark.parametrize("item_type", ITEM_TYPES)
def test_every_item_type_is_answered(api, item_type):
    publish_tiny_model(api.redis)
    result = api.user_items(user=1, item_type=item_type)
    assert result.json["success"] is True
    ids, _ = USER_LISTS[1].get(TYPE_CODE[item_type], ([], []))
    assert [int(i) for i, _ in result.json["items"]] == ids


def test_no_model_at_all_yet(api):
    assert api.user_items().json == failure("The recommender model is not ready yet")
    assert api.similar_items().json == failure("The recommender model is not ready yet")


def test_unknown_tenant_once_some_tenant_is_published(api):
    publish_tiny_model(api.redis, tenant="0")
    assert api.user_items(tenant=5).json == failure("Bad request: no such tenant")
    assert api.similar_items(tenant=5).json == failure("Bad request: no such tenant")


def test_not_trained_tenant(api):
    publish_tiny_model(api.redis, tenant="0")
    publish_not_trained(api.redis, tenant="3")
    message = ("Message: The model for tenant 3 is not trained, probably for insufficient "
               "data")
    assert api.user_items(tenant=3).json == failure(message)
    assert api.similar_items(tenant=3).json == failure(message)
    # Leading zeros name the same tenant.
    assert api.user_items(tenant="003").json == failure(message)


def test_bad_item_type(api):
    publish_tiny_model(api.redis)
    for item_type in ("course", "engage_articles", "", "x" * 10_000, "container_course\x00"):
        assert api.user_items(item_type=item_type).json == failure(
            "Bad request: no such item type is available")


def test_error_order_follows_the_contract(api):
    # No model yet beats a bad item type and an unknown tenant.
    assert api.user_items(tenant=9, item_type="nope").json["message"] == envelope.NOT_READY
    publish_tiny_model(api.redis, tenant="0")
    publish_not_trained(api.redis, tenant="4")
    assert api.user_items(tenant=9, item_type="nope").json["message"] == envelope.NO_TENANT
    assert api.user_items(tenant=4, item_type="nope").json["message"].startswith("Message:")
    assert api.user_items(tenant=0, item_type="nope").json["message"] == envelope.NO_TYPE


def test_unknown_user_is_not_an_error_but_a_popularity_answer(api):
    publish_tiny_model(api.redis)
    result = api.user_items(user=424242, item_type="container_course", n_items=3)
    ids, scores = POPULAR[TYPE_CODE["container_course"]]
    expected = [[str(i), f"{s: .4f}"] for i, s in zip(ids[:3], scores[:3], strict=True)]
    assert result.json == {"success": True, "items": expected}
    assert api.counters.popular == 1 and api.counters.fold_in == 0


def test_user_without_anything_for_a_type_gets_an_empty_success(api):
    publish_tiny_model(api.redis)
    assert api.user_items(user=2, item_type="totara_playlist").json == {"success": True,
                                                                         "items": []}
