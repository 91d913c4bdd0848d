"""Contract §2 /similar-items: the family, never the item itself, the micro-learning retry."""

from __future__ import annotations

import pytest
from publish_fixture import ITEMS, publish_tiny_model

from api import envelope
from runtime.items import FAMILY_OF_TYPE, ITEM_TYPES, TYPE_CODE, item_key


def _ids(result):
    assert result.status_code == 200 and result.json["success"] is True, result.json
    return [int(i) for i, _ in result.json["items"]]


@pytest.mark.parametrize("type_code,number", [(t, n) for t, n, _ in ITEMS])
def test_answers_stay_in_the_family_and_never_hold_the_item(api, type_code, number):
    publish_tiny_model(api.redis)
    query = item_key(type_code, number)
    if type_code == TYPE_CODE["engage_microlearning"]:
        query = item_key(TYPE_CODE["engage_article"], number)  # as Totara sends it
    ids = _ids(api.similar_items(query, n_items=50))
    assert number not in ids
    family = {n for t, n, _ in ITEMS if FAMILY_OF_TYPE[t] == FAMILY_OF_TYPE[type_code]}
    assert set(ids) == family - {number}


def test_similar_articles_rank_their_cluster_first_with_cosine_scores(api):
    publish_tiny_model(api.redis)
    result = api.similar_items("engage_article1", n_items=3)
    assert [i for i, _ in result.json["items"]] == ["2", "3", "7"]  # the cluster A articles
    assert all(s.startswith(" 0.99") or s.startswith(" 1.0") for _, s in result.json["items"])


def test_micro_learning_retry(api):
    publish_tiny_model(api.redis)
    # engage_article7 does not exist; engage_microlearning7 does (cluster A: articles 1-3).
    retried = _ids(api.similar_items("engage_article7", n_items=3))
    assert sorted(retried) == [1, 2, 3]
    assert _ids(api.similar_items("engage_microlearning7", n_items=3)) == retried


def test_unknown_or_malformed_item(api):
    publish_tiny_model(api.redis)
    for item in ("engage_article999", "totara_playlist77", "container_course0", "article1",
                 "engage_article", "engage_article-1", "engage_article1 ", "x" * 10_000,
                 "engage_article99999999999", "totara_playlist1\n", ""):
        result = api.similar_items(item)
        assert result.json == {"success": False, "message": envelope.NO_ITEM, "items": []}


def test_n_items_truncates(api):
    publish_tiny_model(api.redis)
    assert len(_ids(api.similar_items("container_course1", n_items=2))) == 2
    assert len(_ids(api.similar_items("container_course1", n_items=1000))) == 5


@pytest.mark.parametrize("item_type", ITEM_TYPES)
def test_item_of_every_type_is_known(api, item_type):
    publish_tiny_model(api.redis)
    number = next(n for t, n, _ in ITEMS if ITEM_TYPES[t] == item_type)
    assert _ids(api.similar_items(item_type + str(number), n_items=1))
