"""published.runs: run statuses, the version's meta and the last_run record, written by the
pipeline and read back, tolerantly, by the health check, the status page and the metrics."""

from __future__ import annotations

import json
import math

import fakeredis
from hypothesis import given, settings
from hypothesis import strategies as st

from published import keys, recent, versions
from published.runs import (
    FIELDS,
    RUN_FIELDS,
    SUCCESS_STATUSES,
    Fit,
    LastRun,
    RunMeta,
    RunStatus,
    VersionStatus,
    parse_number,
)

HOSTILE = ["nan", "NaN", "inf", "-inf", "Infinity", "1e400", "-1e400", "", " ", "garbage",
           "0x10", "9" * 5000, "\x00", "trained\n", "None", "[]", "{}"]


def _full_fit_meta() -> RunMeta:
    """What the pipeline builds for a full fit with the blend and the re-ranker."""
    return RunMeta(VersionStatus.TRAINED, "hybrid", 400, 150, 8842, "d59f", 20, epochs=8,
                   components=16, epochs_trained=24, precision_at_10=0.2615,
                   recall_at_10=0.652908, ndcg_at_10=0.629592, auc=0.869438, fit=Fit.FULL,
                   incremental_runs=0, validation_pairs="random", full_fit_precision_at_10=0.2615,
                   identity_weight=0.4, blend_weight=1.0, item_item_lambda=50.0, reranked=1,
                   rerank_validation={"blend": 0.253, "reranked": 0.2615},
                   trained_at=1700000000.123, params={"components": 16, "loss": "warp"})


def test_meta_dict_has_the_fields_and_values_the_pipeline_always_wrote():
    assert _full_fit_meta().to_dict() == {
        "status": "trained", "algorithm": "hybrid", "n_users": 400, "n_items": 150,
        "n_interactions": 8842, "export_fingerprint": "d59f", "top_k": 20, "epochs": 8,
        "components": 16, "epochs_trained": 24, "precision_at_10": 0.2615,
        "recall_at_10": 0.652908, "ndcg_at_10": 0.629592, "auc": 0.869438, "fit": "full",
        "incremental_runs": 0, "validation_pairs": "random", "full_fit_precision_at_10": 0.2615,
        "identity_weight": 0.4, "blend_weight": 1.0, "item_item_lambda": 50.0, "reranked": 1,
        "rerank_validation_blend": 0.253, "rerank_validation_reranked": 0.2615,
        "trained_at": 1700000000.123, "params": {"components": 16, "loss": "warp"}}


def test_meta_of_a_tenant_too_small_to_train_names_only_sizes_and_the_reason():
    meta = RunMeta(VersionStatus.NOT_TRAINED, "mf", 3, 4, 5, "ab", 20, message="too small",
                   trained_at=1.5)
    assert meta.to_dict() == {"status": "not_trained", "algorithm": "mf", "n_users": 3,
                              "n_items": 4, "n_interactions": 5, "export_fingerprint": "ab",
                              "top_k": 20, "message": "too small", "trained_at": 1.5}


def test_meta_dict_holds_only_plain_json_types_so_the_sidecar_text_is_unchanged():
    values = _full_fit_meta().to_dict()
    assert all(type(v) in (str, int, float, dict) for v in values.values())
    assert json.loads(json.dumps(values, sort_keys=True)) == values


def _commit_and_read(meta: RunMeta) -> dict[str, str]:
    """Through the version writer, as publish_arrays does: the scalars, as text."""
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    writer = versions.VersionWriter(client, "0")
    writer.commit({k: v for k, v in meta.to_dict().items() if isinstance(v, str | int | float)})
    return versions.current_meta(client, "0")


def test_meta_hash_text_reads_back_as_the_same_meta_without_the_sidecar_params():
    meta = _full_fit_meta()
    fields = _commit_and_read(meta)
    assert fields["blend_weight"] == "1.0" and fields["reranked"] == "1"
    assert fields["full_fit_precision_at_10"] == "0.2615" and "params" not in fields
    meta.params = None
    assert RunMeta.from_fields(fields) == meta


finite = st.floats(allow_nan=False, allow_infinity=False)
counts = st.integers(min_value=0, max_value=2**62)
text = st.text(min_size=1)


@settings(max_examples=60, deadline=None)
@given(st.builds(RunMeta, status=st.sampled_from(VersionStatus), algorithm=text,
                 n_users=counts, n_items=counts, n_interactions=counts, top_k=counts,
                 precision_at_10=finite, auc=finite, trained_at=finite, fit=st.sampled_from(Fit),
                 incremental_from=text, incremental_runs=counts, identity_weight=finite,
                 reranked=st.sampled_from([0, 1]),
                 rerank_validation=st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True),
                                                   finite, max_size=3)))
def test_any_meta_survives_the_round_trip_through_its_hash_text(meta):
    fields = {k: str(v) for k, v in meta.to_dict().items()}
    assert RunMeta.from_fields(fields) == meta


def test_hostile_meta_values_read_as_absent():
    for raw in HOSTILE:
        meta = RunMeta.from_fields({**{name: raw for name in FIELDS},
                                    "rerank_validation_blend": raw})
        numbers = [meta.n_users, meta.top_k, meta.auc, meta.trained_at, meta.incremental_runs]
        assert numbers == [None] * 5, raw
        assert meta.status is None and meta.fit is None and meta.rerank_validation == {}


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from([*FIELDS, "rerank_validation_x", "other"])
                       | st.text(max_size=30), st.text(max_size=40)))
def test_reading_any_meta_hash_never_raises_and_gives_only_finite_numbers(raw):
    meta = RunMeta.from_fields(raw)
    for value in (meta.auc, meta.precision_at_10, meta.trained_at, meta.n_users,
                  *meta.rerank_validation.values()):
        assert value is None or math.isfinite(value)
    assert meta.status in (None, *VersionStatus)


@given(st.text(max_size=50))
def test_parse_number_never_raises(raw):
    value = parse_number(raw)
    assert value is None or math.isfinite(value)


def test_numbers_that_are_whole_read_as_counts_others_as_absent():
    meta = RunMeta.from_fields({"n_users": "16.0", "n_items": "2.5", "top_k": " 20 "})
    assert (meta.n_users, meta.n_items, meta.top_k) == (16, None, 20)


def test_last_run_is_written_as_the_pipeline_always_recorded_it():
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    LastRun(RunStatus.PUBLISHED, "trained: P@10 0.2615", 1700000000.123, "v1", "hybrid",
            0.26150001).write(client, "0")
    LastRun(RunStatus.FAILED, "DownloadError: 404", 1700000001.5).write(client, "1")
    assert client.hgetall(keys.last_run("0")) == {
        b"status": b"published", b"message": b"trained: P@10 0.2615", b"at": b"1700000000.123",
        b"version": b"v1", b"algorithm": b"hybrid", b"precision_at_10": b"0.26150001"}
    assert client.hgetall(keys.last_run("1")) == {
        b"status": b"failed", b"message": b"DownloadError: 404", b"at": b"1700000001.5",
        b"version": b"", b"algorithm": b"", b"precision_at_10": b""}


def test_last_run_reads_back_and_tolerates_hostile_values():
    run = LastRun(RunStatus.STALE, "newer", 12.5, "v2", "mf", 0.5)
    fields = {k: str(v) for k, v in vars(run).items()}
    assert LastRun.from_fields(fields) == run
    for raw in HOSTILE:
        hostile = LastRun.from_fields({name: raw for name in RUN_FIELDS})
        assert (hostile.status, hostile.at, hostile.precision_at_10) == (None, None, None)
    assert LastRun.from_fields({}) == LastRun(None)


def test_statuses_and_kinds_equal_the_strings_on_the_wire():
    assert [s.value for s in RunStatus] == ["published", "not_trained", "rejected", "failed",
                                            "skipped", "stale", "locked", "lock_lost"]
    assert SUCCESS_STATUSES == {"published", "not_trained", "skipped", "stale", "rejected"}
    assert [s.value for s in VersionStatus] == ["trained", "not_trained"]
    assert f"{RunStatus.NOT_TRAINED}" == str(RunStatus.NOT_TRAINED) == "not_trained"


def test_answer_kinds_are_the_strings_logs_and_metrics_always_used():
    from api.metrics import ColdAnswer
    from consumer.jobs import OutcomeKind

    assert [k.value for k in OutcomeKind] == ["trained", "locked", "duplicate", "tenants"]
    assert [k.value for k in ColdAnswer] == ["fold_in", "popular"]


def test_recent_events_format_is_defined_once_for_the_consumer_and_the_api():
    assert (recent.MAX_EVENTS, recent.TTL_SECONDS) == (100, 30 * 24 * 3600)
    assert recent.entry("engage_article12", 1700000000, 1) == (
        '{"item_id":"engage_article12","timestamp":1700000000,"rating":1}')


def test_a_run_message_of_any_length_is_recorded_capped_with_its_length():
    # Given a run whose message quotes 200,000 characters (an unexpected error's text)
    client = fakeredis.FakeRedis()
    LastRun(RunStatus.FAILED, "ValueError: " + "x" * 200_000, 1.0).write(client, "7")

    # Then last_run holds its beginning and its length, not the whole of it
    message = client.hget(keys.last_run("7"), "message").decode()
    assert message.startswith("ValueError: xxx") and message.endswith("(200,012 characters)")
    assert len(message) <= 2100
