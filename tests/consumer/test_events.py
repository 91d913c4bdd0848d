"""Event schema: what is accepted, what is poison, and the reason given."""

from __future__ import annotations

import json

import pytest

from consumer import events
from consumer.events import InvalidEvent, child_id, decode, make_event, validate


def body(kind: str, **fields) -> dict:
    return {"type": kind, "version": 1, "id": "2b8f6c1e-0000-4000-8000-000000000001",
            "created": 1700000000.5, **fields}


@pytest.mark.parametrize("data", [
    body("export-ready"),
    body("export-ready", tenants=["0", 3, "12"]),
    body("retrain"),
    body("retrain", tenant=4, algorithm="partial"),
    body("train", tenant="0"),
    body("train", tenant="7", algorithm="mf", force=True, parent="abc-1"),
    body("interaction", tenant="0", user_id=5, item_id="engage_microlearning9",
         timestamp=1700000000),
    body("interaction", tenant=2, user_id="5", item_id="totara_playlist1", timestamp=1.5,
         rating=1),
])
def test_valid_events_of_every_type_are_accepted(data):
    event = validate(data)
    assert event.type == data["type"]
    assert event.id == data["id"]
    assert validate(json.loads(json.dumps(event.body()))) == event


def test_tenants_are_normalised_to_digit_strings_without_duplicates():
    event = validate(body("export-ready", tenants=[3, "3", "012", 0]))
    assert event.fields["tenants"] == ["3", "12", "0"]


@pytest.mark.parametrize("data, reason", [
    ([1, 2], "must be a JSON object"),
    (body("explode"), "unknown event type 'explode'"),
    ({**body("train", tenant="1"), "version": 2}, "unsupported version 2"),
    ({**body("train", tenant="1"), "version": True}, "unsupported version"),
    ({k: v for k, v in body("train", tenant="1").items() if k != "id"}, "id must be"),
    (body("train", tenant="1") | {"id": "bad id with spaces"}, "id must be"),
    (body("train", tenant="1") | {"created": "yesterday"}, "created must be"),
    (body("train"), "train needs the field tenant"),
    (body("train", tenant="1", forse=True), "unknown field(s) in train: forse"),
    (body("train", tenant="{1}"), "tenant must be a tenant id"),
    (body("train", tenant="1\n"), "tenant must be a tenant id"),
    (body("train", tenant="1") | {"id": "abc\n"}, "id must be"),
    (body("train", tenant=True), "tenant must be a tenant id"),
    (body("train", tenant="1", algorithm="deep"), "algorithm must be one of"),
    (body("train", tenant="1", force="yes"), "force must be true or false"),
    (body("export-ready", tenants=[]), "tenants must be a non-empty list"),
    (body("export-ready", tenants="1,2"), "tenants must be a non-empty list"),
    (body("interaction", tenant="0", user_id=0, item_id="engage_article1", timestamp=1),
     "user_id must be a positive"),
    (body("interaction", tenant="0", user_id=1, item_id="article1", timestamp=1),
     "item_id must be a Totara item key"),
    (body("interaction", tenant="0", user_id=1, item_id="engage_article1", timestamp=-5),
     "timestamp must be Unix seconds"),
    (body("interaction", tenant="0", user_id=1, item_id="engage_article1", timestamp=1,
          rating=2), "rating must be 0 or 1"),
    (body("interaction", tenant="0", user_id=1, timestamp=1), "needs the field item_id"),
])
def test_invalid_events_are_refused_with_a_reason(data, reason):
    with pytest.raises(InvalidEvent) as caught:
        validate(data)
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


def test_decode_accepts_json_with_or_without_a_content_type():
    raw = json.dumps(body("train", tenant="1")).encode()
    assert decode(raw, "application/json").fields == {"tenant": "1"}
    assert decode(raw, None).fields == {"tenant": "1"}


@pytest.mark.parametrize("raw, content_type, reason", [
    (b"\xff\xfe", "application/json", "not JSON"),
    (b"{", None, "not JSON"),
    (b"{}", "application/x-python-serialize", "content type"),
])
def test_decode_refuses_what_is_not_json(raw, content_type, reason):
    with pytest.raises(InvalidEvent, match=reason):
        decode(raw, content_type)


def test_make_event_fills_the_envelope_and_drops_none_fields():
    event = make_event(events.TRAIN, tenant="3", algorithm=None)
    assert event.fields == {"tenant": "3"}
    data = event.body()
    assert data["version"] == 1 and data["type"] == "train" and len(data["id"]) == 36
    assert isinstance(data["created"], float)


def test_child_ids_are_stable_per_parent_and_tenant():
    assert child_id("p1", "3") == child_id("p1", "3")
    assert child_id("p1", "3") != child_id("p1", "4")
    assert child_id("p1", "3") != child_id("p2", "3")
    validate(body("train", tenant="3") | {"id": child_id("p1", "3")})
