"""Users without a published list: fold-in from recent interactions, else popularity."""

from __future__ import annotations

import logging

import numpy as np
from publish_fixture import POPULAR, add_recent_events, publish_tiny_model

from api.foldin import ModelArrays
from runtime.items import TYPE_CODE

COLD_USER = 5000


def _ids(result):
    assert result.status_code == 200 and result.json["success"] is True, result.json
    return [int(i) for i, _ in result.json["items"]]


def test_cold_user_without_events_gets_the_popularity_list(api):
    publish_tiny_model(api.redis)
    assert _ids(api.user_items(COLD_USER, "engage_article", n_items=3)) == [6, 5, 4]
    assert _ids(api.user_items(COLD_USER, "container_workspace")) == []  # none stored
    assert (api.counters.popular, api.counters.fold_in) == (2, 0)


def test_fold_in_ranks_the_neighbours_of_recent_items_first(api, caplog):
    publish_tiny_model(api.redis)
    add_recent_events(api.redis, "0", COLD_USER, [("engage_article1", 1), ("container_course2", 0)])
    with caplog.at_level(logging.DEBUG, logger="api.recommend"):
        articles = _ids(api.user_items(COLD_USER, "engage_article", n_items=6))
    # Cluster A (articles 2, 3) beats cluster B despite B's higher biases and popularity;
    # the article the user already saw is left out.
    assert articles[:2] == [2, 3] and set(articles[2:]) == {4, 5, 6}
    courses = _ids(api.user_items(COLD_USER, "container_course", n_items=2))
    assert courses == [1, 3]
    assert _ids(api.user_items(COLD_USER, "engage_microlearning", n_items=1)) == [7]
    assert api.counters.fold_in == 3 and api.counters.popular == 0
    assert "fold-in" in caplog.text


def test_fold_in_answer_has_the_envelope_format(api):
    publish_tiny_model(api.redis)
    add_recent_events(api.redis, "0", COLD_USER, [("engage_article1", 1)])
    items = api.user_items(COLD_USER, "engage_article", n_items=2).json["items"]
    assert all(isinstance(i, str) and i.isdigit() for i, _ in items)
    assert all(len(s) == 7 and s[0] in " -" and s[2] == "." for _, s in items)


def test_events_on_unknown_items_fall_back_to_popularity(api):
    publish_tiny_model(api.redis)
    add_recent_events(api.redis, "0", COLD_USER, [("engage_article999", 1)])
    api.redis.lpush(f"ml:{{0}}:recent:{COLD_USER}", b"not json", b'{"item_id": 5}', b"[]")
    assert _ids(api.user_items(COLD_USER, "container_course")) == POPULAR[0][0]
    assert api.counters.popular == 1


def test_published_user_ignores_recent_events(api):
    publish_tiny_model(api.redis)
    add_recent_events(api.redis, "0", 1, [("engage_article6", 1)])
    assert _ids(api.user_items(1, "container_course")) == [3, 1, 2]
    assert api.counters.fold_in == api.counters.popular == 0


def test_events_of_another_tenant_are_not_used(api):
    publish_tiny_model(api.redis, tenant="0")
    publish_tiny_model(api.redis, tenant="1")
    add_recent_events(api.redis, "1", COLD_USER, [("engage_article1", 1)])
    assert _ids(api.user_items(COLD_USER, "engage_article", tenant=0, n_items=2)) == [6, 5]
    assert _ids(api.user_items(COLD_USER, "engage_article", tenant=1, n_items=2)) == [2, 3]


def test_model_arrays_newest_event_per_item_and_rating_weight():
    emb = np.array([[1, 0], [0, 1], [1, 0], [0, 1]], dtype=np.float32)
    model = ModelArrays(np.array([1, 2, 3, 4], "<u4"), np.array([2, 2, 2, 2], "u1"), emb,
                        np.zeros(4, np.float32))
    article = TYPE_CODE["engage_article"]
    events = [b'{"item_id": "engage_article1", "rating": 1}',
              b'{"item_id": "engage_article2", "rating": 0}',
              b'{"item_id": "engage_article2", "rating": 1}']  # older: ignored
    ids, scores = model.recommend(events, article, 10)
    assert ids.tolist() == [3, 4]
    assert np.allclose(scores, [2 / 3, 1 / 3])
    assert model.recommend([b'{"item_id": "container_course1"}'], article, 3) is None
    ids, _ = model.recommend([events[0]], TYPE_CODE["totara_playlist"], 3)
    assert ids.tolist() == []


def test_model_arrays_reject_incomplete_hash():
    assert ModelArrays.from_fields({"shape": b"{}"}) is None
    assert ModelArrays.from_fields({"shape": b"not json", "item_numbers": b"",
                                    "item_types": b"", "item_embeddings": b"",
                                    "item_biases": b""}) is None
