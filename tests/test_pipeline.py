"""The tenant pipeline from export files to published lists, and what it refuses to publish."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from published import keys, packing, summary, versions
from recommender import pipeline
from recommender.ingest import export
from recommender.model.params import TrainParams
from recommender.offline import demo
from recommender.publish import modelfile, restore
from runtime import config

FAST = TrainParams(components=16, max_epochs=8, patience=2)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    demo.write_demo_export(folder, tenants=2, users=150, items=60, interactions=3000, seed=3)
    return folder


@pytest.fixture
def settings(base_env, export_dir) -> config.Settings:
    return config.from_env({**base_env, "ML_EXPORT_DIR": str(export_dir), "ML_TOP_K": "20"})


def _train(settings, client, tenant="0", **kwargs) -> pipeline.TenantResult:
    return pipeline.train_tenant(settings, client, tenant, params=FAST, **kwargs)


def _user_ids(export_dir: Path, tenant: str) -> list[int]:
    return export.load_tenant(export_dir, tenant).users.ids.tolist()


def test_training_publishes_a_list_for_every_user_and_every_item(settings, fake_redis,
                                                                  export_dir):
    result = _train(settings, fake_redis, "1")
    assert result.status == "published", result.message
    version = versions.current_version(fake_redis, "1")
    assert version == result.version
    data = export.load_tenant(export_dir, "1")
    for user_id in data.users.ids.tolist():
        blob = fake_redis.hget(keys.user_bucket("1", version, user_id), str(user_id))
        assert blob is not None, user_id
        assert all(len(ids) <= 20 for ids, _ in packing.unpack_all(blob))
    for key, number in zip(data.items.keys, data.items.numbers.tolist(), strict=True):
        assert fake_redis.hexists(keys.item_bucket("1", version, number), key), key
    meta = versions.current_meta(fake_redis, "1")
    assert int(meta["n_items"]) == len(data.items) and meta["status"] == "trained"
    # The chosen identity share and the compute spent are kept for diagnosis
    assert float(meta["identity_weight"]) in FAST.identity_weights
    assert int(meta["epochs_trained"]) >= int(meta["epochs"])
    assert fake_redis.exists(keys.model("1", version), keys.popular("1", version)) == 2
    # And the run is in train_summary.log, the model on disk, the outcome in last_run
    assert summary.read(settings.logs_dir)[-1]["TENANT_ID"] == "1"
    assert modelfile.current_version(settings.models_dir, "1") == version
    assert fake_redis.hget(keys.last_run("1"), "status") == b"published"


def test_a_malformed_export_leaves_the_published_lists_untouched(settings, fake_redis,
                                                                 export_dir, tmp_path):
    good = _train(settings, fake_redis, "0")
    # Given a new export whose interactions file has a broken row on line 3
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("tenants.csv", "user_data_0.csv", "item_data_0.csv"):
        (broken / name).write_bytes((export_dir / name).read_bytes())
    lines = (export_dir / "user_interactions_0.csv").read_text().splitlines()
    lines[2] = "abc," + lines[2].split(",", 1)[1]
    (broken / "user_interactions_0.csv").write_text("\n".join(lines) + "\n")
    # When it is trained
    result = _train(settings, fake_redis, "0", export_dir=broken, force=True)
    # Then the run fails naming the file and line, and the old version is still served
    assert result.status == "failed"
    assert "user_interactions_0.csv" in result.message and "line 3" in result.message
    assert versions.current_version(fake_redis, "0") == good.version
    assert "user_interactions_0.csv" in summary.read(settings.logs_dir)[-1]["MSG"]


def test_the_same_export_is_not_trained_twice_unless_forced(settings, fake_redis):
    first = _train(settings, fake_redis)
    again = _train(settings, fake_redis)
    assert again.status == "skipped" and again.version == first.version
    forced = _train(settings, fake_redis, force=True)
    assert forced.status == "published" and forced.version != first.version


def test_a_tenant_with_too_little_data_is_published_as_not_trained(base_env, fake_redis,
                                                                   tmp_path):
    demo.write_demo_export(tmp_path, tenants=1, users=6, items=40, interactions=50, seed=1)
    settings = config.from_env({**base_env, "ML_EXPORT_DIR": str(tmp_path)})
    result = _train(settings, fake_redis)
    assert result.status == "not_trained"
    assert versions.current_meta(fake_redis, "0")["status"] == "not_trained"
    assert "too small" in summary.read(settings.logs_dir)[-1]["MSG"]


def test_promotion_gate_keeps_a_worse_model_out_unless_forced(settings, fake_redis):
    # Given a published model with a validation P@10 no new model can reach
    first = _train(settings, fake_redis)
    fake_redis.hset(keys.meta("0", first.version),
                    mapping={"precision_at_10": "0.99", "full_fit_precision_at_10": "0.99"})
    fake_redis.hset(keys.meta("0", first.version), "export_fingerprint", "older export")
    # When a new model is trained, it is refused, logged, and the old one stays
    refused = _train(settings, fake_redis)
    assert refused.status == "rejected"
    assert "below 90%" in refused.message
    assert versions.current_version(fake_redis, "0") == first.version
    assert "not published" in summary.read(settings.logs_dir)[-1]["MSG"]
    assert fake_redis.hget(keys.last_run("0"), "status") == b"rejected"
    # When the operator forces it, it is published
    assert _train(settings, fake_redis, force=True).status == "published"


def test_restore_republishes_the_saved_models_into_an_empty_redis(settings, fake_redis,
                                                                  export_dir):
    trained = _train(settings, fake_redis, "1")
    user_id = _user_ids(export_dir, "1")[7]
    before = fake_redis.hget(keys.user_bucket("1", trained.version, user_id), str(user_id))
    fake_redis.flushall()
    results = restore.restore(settings, fake_redis)
    assert [(r.tenant, r.status) for r in results] == [("1", "published")]
    version = versions.current_version(fake_redis, "1")
    after = fake_redis.hget(keys.user_bucket("1", version, user_id), str(user_id))
    assert after == before
    assert versions.current_meta(fake_redis, "1")["precision_at_10"] == str(
        round(trained.metrics["precision_at_10"], 6))


@pytest.mark.parametrize("algorithm", ["mf", "partial", "hybrid"])
def test_each_algorithm_beats_popularity_on_held_out_demo_interactions(algorithm, tmp_path):
    from recommender.model import features, ranking, train

    demo.write_demo_export(tmp_path, tenants=1, users=600, items=150, interactions=12000, seed=5)
    data = export.load_tenant(tmp_path, "0")
    fs = features.build(data, algorithm)
    fitted = train.fit(fs, TrainParams(components=32, max_epochs=15, patience=3), 2)
    full = fs.interactions.tocsr()
    train_part, held_out = ranking.split_per_user(full, 0.2, TrainParams().seed)
    popularity = np.asarray(train_part.sum(axis=0)).ravel().astype(np.float32)
    baseline = ranking.ranking_metrics(lambda rows: np.tile(popularity, (len(rows), 1)),
                                       train_part, held_out, k=10, with_auc=False)
    assert fitted.validation["precision"] > 1.1 * baseline["precision"], (
        fitted.validation, baseline)


def test_a_blended_model_is_saved_with_its_item_item_part_and_restored_identically(
        settings, fake_redis, export_dir):
    # Given a LightFM part too small to learn much (2 components, 1 epoch), the validation
    # split favours the item-item blend
    weak = TrainParams(components=2, max_epochs=1, patience=1, item_item_lambdas=(10.0,),
                       item_item_neighbours=(5,), item_item_dense_items=0,
                       blend_weights=(1.0, 4.0), finer_blend_weights=())
    trained = pipeline.train_tenant(settings, fake_redis, "1", params=weak, force=True)
    meta = versions.current_meta(fake_redis, "1")
    assert float(meta["blend_weight"]) > 0 and meta["item_item_neighbours"] == "5"
    model, saved_meta = modelfile.load(settings.models_dir, "1", trained.version)
    n_items = len(model.item_numbers)
    assert len(model.blend.indptr) == n_items + 1
    assert np.all(np.diff(model.blend.indptr) <= n_items - 1)  # no dense matrix
    assert model.blend.weight == saved_meta["blend_weight"]
    user_ids = _user_ids(export_dir, "1")
    before = [fake_redis.hget(keys.user_bucket("1", trained.version, u), str(u))
              for u in user_ids[:20]]
    # When Redis is emptied and the saved model restored
    fake_redis.flushall()
    restore.restore(settings, fake_redis)
    version = versions.current_version(fake_redis, "1")
    after = [fake_redis.hget(keys.user_bucket("1", version, u), str(u)) for u in user_ids[:20]]
    # Then the lists are the blended ones, byte for byte
    assert after == before and all(before)


def test_computing_the_lists_counts_as_publishing_not_saving(settings, fake_redis, monkeypatch):
    # Given list computation that takes a noticeable time (the lists are computed while their
    # file is written, within the save stage)
    from recommender.publish import topk

    real = topk.user_lists

    def slow_user_lists(*args, **kwargs):
        for batch in real(*args, **kwargs):
            time.sleep(0.3)
            yield batch

    monkeypatch.setattr(topk, "user_lists", slow_user_lists)
    # When a tenant is trained
    result = _train(settings, fake_redis, "0", force=True)
    # Then the stages keep their meaning: the time went to "publish", as before the lists file
    assert result.status == "published", result.message
    assert result.stage_seconds["publish"] >= 0.3 > result.stage_seconds["save"]


def test_a_summary_log_holding_an_oversized_row_does_not_fail_a_published_run(settings,
                                                                             fake_redis):
    # Given a train_summary.log with a row over Python's csv field limit (an older version
    # wrote messages uncapped)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    (settings.logs_dir / summary.FILE_NAME).write_text(
        ",".join(summary.HEADER) + "\n" + f'2026-01-01 00:00:00,hybrid,0,"{"x" * 200_000}",,,\n')

    # When a tenant is trained, its run is published and recorded as such
    result = _train(settings, fake_redis, "1")
    assert result.status == "published", result.message
    assert fake_redis.hget(keys.last_run("1"), "status") == b"published"
    assert summary.read(settings.logs_dir)[-1]["TENANT_ID"] == "1"


def test_a_summary_log_that_cannot_be_written_does_not_fail_a_published_run(settings,
                                                                           fake_redis, caplog):
    # Given ML_LOGS_DIR is not a folder (any write to it fails)
    settings.logs_dir.parent.mkdir(parents=True, exist_ok=True)
    settings.logs_dir.write_text("not a folder")

    # When a tenant is trained, the run is still published, and the log says what was lost
    result = _train(settings, fake_redis, "1")
    assert result.status == "published", result.message
    assert fake_redis.hget(keys.last_run("1"), "status") == b"published"
    assert "train_summary.log" in caplog.text
