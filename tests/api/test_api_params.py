"""Malformed queries get the failure envelope with a clear message, never a 500."""

from __future__ import annotations

import pytest
from publish_fixture import publish_tiny_model

GOOD_USER = {"totara_user_id": "1", "item_type": "container_course", "tenant": "0",
             "n_items": "5"}
GOOD_ITEM = {"totara_item_id": "engage_article1", "tenant": "0", "n_items": "5"}


def _query(base, **changes):
    params = {**base, **changes}
    return "&".join(f"{k}={v}" for k, v in params.items() if v is not None)


CASES = [
    ("missing n_items", {"n_items": None}, "Bad request: missing parameter n_items"),
    ("missing tenant", {"tenant": None}, "Bad request: missing parameter tenant"),
    ("n_items=abc", {"n_items": "abc"}, "Bad request: n_items must be a whole number from 1 "
                                         "to 1000"),
    ("n_items empty", {"n_items": ""}, "n_items must be a whole number"),
    ("n_items=0", {"n_items": "0"}, "n_items must be a whole number"),
    ("n_items negative", {"n_items": "-5"}, "n_items must be a whole number"),
    ("n_items huge", {"n_items": "1001"}, "n_items must be a whole number"),
    ("n_items 40 digits", {"n_items": "9" * 40}, "n_items must be a whole number"),
    ("n_items float", {"n_items": "2.5"}, "n_items must be a whole number"),
    ("n_items unicode digits", {"n_items": "%D9%A3"}, "n_items must be a whole number"),
    ("tenant=algorithm", {"tenant": "algorithm"}, "Bad request: no such tenant (tenant must "
                                                  "be a whole number"),
    ("tenant negative", {"tenant": "-1"}, "Bad request: no such tenant"),
    ("tenant huge", {"tenant": "9" * 30}, "Bad request: no such tenant"),
    ("tenant control character", {"tenant": "0%00"}, "Bad request: no such tenant"),
    ("unknown parameter", {"debug": "1"}, "Bad request: unknown parameter; expected only"),
    ("duplicated parameter", {"n_items": "5&n_items=6"}, "Bad request: parameter n_items is "
                                                          "given more than once"),
]


@pytest.mark.parametrize("changes,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
@pytest.mark.parametrize("endpoint", ["/user-items", "/similar-items"])
def test_bad_parameters_get_the_failure_envelope(api, endpoint, changes, message):
    publish_tiny_model(api.redis)
    base = GOOD_USER if endpoint == "/user-items" else GOOD_ITEM
    result = api.get(endpoint, query_string=_query(base, **changes))
    assert result.status_code == 200
    body = result.json
    assert body["success"] is False and body["items"] == []
    assert body["message"].startswith("Bad request: ") and message in body["message"]
    assert "%" not in body["message"] and "\x00" not in body["message"]


@pytest.mark.parametrize("user", ["abc", "-3", "1.0", "9" * 30, "1%0A", "x" * 10_000])
def test_bad_user_id(api, user):
    publish_tiny_model(api.redis)
    result = api.get("/user-items", query_string=_query(GOOD_USER, totara_user_id=user))
    assert result.json["message"].startswith("Bad request: no such user id")
    assert user not in result.json["message"]


def test_unknown_parameter_name_is_not_echoed(api):
    publish_tiny_model(api.redis)
    result = api.get("/user-items", query_string=_query(GOOD_USER) + "&" + "z" * 10_000 + "=1")
    assert result.json["success"] is False
    assert len(result.text) < 300


def test_control_characters_and_big_values_never_give_a_500(api):
    publish_tiny_model(api.redis)
    for value in ("%00", "%1b%5b31m", "%ff%fe", "x" * 10_000, "%E2%80%AE"):
        for base, name in ((GOOD_USER, "item_type"), (GOOD_USER, "totara_user_id"),
                           (GOOD_ITEM, "totara_item_id")):
            endpoint = "/user-items" if base is GOOD_USER else "/similar-items"
            result = api.get(endpoint, query_string=_query(base, **{name: value}))
            assert result.status_code == 200
            assert result.json["success"] is False


def test_leading_zeros_are_accepted(api):
    publish_tiny_model(api.redis)
    result = api.get("/user-items", query_string=_query(GOOD_USER, totara_user_id="0001",
                                                        n_items="002"))
    assert [i for i, _ in result.json["items"]] == ["3", "1"]
