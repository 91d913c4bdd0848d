"""`/`, `/health-check`, `/readyz` and `/metrics` never answer 500, whatever Redis and the logs
folder hold: values the pages do not expect (NaN, infinities, timestamps in the year 3 billion,
garbage bytes, numbers of any size), fields missing, keys of the wrong type, and any bytes in
train_summary.log. A property test writes such state into fakeredis and the logs folder and
calls each endpoint through the app."""

from __future__ import annotations

import csv
import dataclasses

import fakeredis
from api_client import Api
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from published import keys, runs, summary

ENDPOINTS = ("/", "/health-check", "/readyz", "/metrics")
NUMBERS = ["nan", "NaN", "inf", "-inf", "1e20", "-1e20", "1e400", "-1", "0", "", "1.5",
           "99999999999999999999999", "1" * 400, "0x10", " 7 ", "1_000"]
ANY_VALUE = st.one_of(st.sampled_from(NUMBERS), st.binary(max_size=40),
                      st.floats(allow_nan=True, allow_infinity=True).map(repr),
                      st.integers().map(str), st.text(max_size=40))
TENANT = st.one_of(st.sampled_from(["0", "1", "007", "-3", "", "a b", "ü", "9" * 300]),
                   st.binary(max_size=12))
FIELD_NAMES = st.sampled_from([*runs.FIELDS, *runs.RUN_FIELDS, "rerank_validation_blend",
                               "rerank_validation_", "unknown"])
# Where a key of the wrong type can stand: (key, a command that makes it another type)
WRONG_TYPES = ("string", "hash", "list", "set")


def _store_wrong_type(client: fakeredis.FakeRedis, key: str, kind: str) -> None:
    client.delete(key)
    if kind == "string":
        client.set(key, b"\xff\x00garbage")
    elif kind == "hash":
        client.hset(key, "field", "1e20")
    elif kind == "list":
        client.rpush(key, "x")
    else:
        client.sadd(key, "x")


@st.composite
def hostile_state(draw: st.DrawFn) -> dict:
    tenants = draw(st.lists(TENANT, min_size=0, max_size=3, unique=True))
    state = {"tenants": tenants, "per_tenant": [], "leader": draw(st.none() | ANY_VALUE),
             "wrong": draw(st.lists(st.tuples(st.sampled_from(["tenants", "current", "meta",
                                                               "last_run", "leader"]),
                                              st.sampled_from(WRONG_TYPES)), max_size=2)),
             "log": draw(st.sampled_from(["none", "garbage", "oversized", "good"])),
             "log_bytes": draw(st.binary(max_size=300))}
    for _ in tenants:
        state["per_tenant"].append({
            "version": draw(st.none() | st.binary(max_size=20) | st.just(b"v1")),
            "meta": draw(st.dictionaries(FIELD_NAMES, ANY_VALUE, max_size=8)),
            "run": draw(st.dictionaries(FIELD_NAMES, ANY_VALUE, max_size=6)),
        })
    return state


def _tenant_text(tenant: str | bytes) -> str:
    return tenant.decode("utf-8", "replace") if isinstance(tenant, bytes) else tenant


def _write(client: fakeredis.FakeRedis, state: dict) -> None:
    for tenant, values in zip(state["tenants"], state["per_tenant"], strict=True):
        client.sadd(keys.TENANTS, tenant)
        name = _tenant_text(tenant)
        if values["version"] is not None:
            client.set(keys.current(name), values["version"])
            version = values["version"].decode("utf-8", "replace")
            if values["meta"]:
                client.hset(keys.meta(name, version), mapping=values["meta"])
        if values["run"]:
            client.hset(keys.last_run(name), mapping=values["run"])
    if state["leader"] is not None:
        client.set(keys.SCHEDULE_LEADER, state["leader"])
    first = _tenant_text(state["tenants"][0]) if state["tenants"] else "0"
    targets = {"tenants": keys.TENANTS, "current": keys.current(first),
               "meta": keys.meta(first, "v1"), "last_run": keys.last_run(first),
               "leader": keys.SCHEDULE_LEADER}
    for where, kind in state["wrong"]:
        _store_wrong_type(client, targets[where], kind)


def _write_log(logs_dir, state: dict) -> None:
    logs_dir.mkdir(parents=True, exist_ok=True)
    path = logs_dir / summary.FILE_NAME
    if state["log"] == "garbage":
        path.write_bytes(state["log_bytes"])
    elif state["log"] == "oversized":  # as written before values were capped
        with open(path, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle, lineterminator="\n").writerows(
                [summary.HEADER, ["2026-01-01 00:00:00", "hybrid", "0", "x" * 200_000, "",
                                  "", ""]])
    elif state["log"] == "good":
        summary.append(logs_dir, "hybrid", "0", "Training done", 7, 40, 0.9)


@examples(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(state=hostile_state())
def test_open_pages_never_answer_500_whatever_redis_and_the_logs_hold(settings, state):
    # Given any stored state
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    _write(client, state)
    _write_log(settings.logs_dir, state)
    # (no Totara to call: the Totara check has tests of its own, and the time goes to examples)
    api = Api(dataclasses.replace(settings, totara_url=None), client)

    # When each page is asked for, it answers with what it knows
    for path in ENDPOINTS:
        result = api.get(path)
        assert result.status_code in (200, 503), (path, result.status_code, result.text[:300])
        if path == "/health-check":
            assert result.json["success"] is False  # no Totara: never healthy


def test_health_check_reads_a_summary_log_with_a_row_over_the_csv_field_limit(
        settings, fake_redis):
    # Given a train_summary.log written before values were capped, then a good row
    _write_log(settings.logs_dir, {"log": "oversized"})
    with open(settings.logs_dir / summary.FILE_NAME, "a", encoding="utf-8") as handle:
        handle.write("2026-01-02 00:00:00,hybrid,0,Training done,7,40,0.9000\n")

    # When the health check reads it, the good row is summarised
    body = Api(settings, fake_redis).get("/health-check").json
    assert body["totara"]["logs_file_exists"] == "true"
    assert "Training done" in body["totara"]["last_recommendation_model_training"]
