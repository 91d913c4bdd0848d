"""Incremental retraining: the saved model's parameters follow ids and names across exports,
validation holds out only pairs the saved model never saw, and the pipeline falls back to a full
fit whenever a warm start would not be sound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from published import keys, packing, versions
from recommender import pipeline, promotion
from recommender.ingest import export
from recommender.model import features, saving, train
from recommender.model.warmstart import Saved, prepare, split_new_pairs
from recommender.offline import demo
from recommender.publish import modelfile
from runtime import config
from tests.factories import make_export, reindex

PARAMS = train.TrainParams(components=8, max_epochs=4, patience=1, incremental_max_epochs=3,
                           incremental_patience=1)


def _pairs(data) -> set[tuple[int, str]]:
    inter = data.interactions
    return {(int(data.users.ids[u]), data.items.keys[i])
            for u, i in zip(inter.users.tolist(), inter.items.tolist(), strict=True)}


def _save_fitted(models_dir: Path, data, algorithm: str = "hybrid",
                 incremental_runs: int = 0) -> dict[str, np.ndarray]:
    fs = features.build(data, algorithm)
    fitted = train.fit_fixed(fs, PARAMS, epochs=2, num_threads=1)
    model = saving.saved_model(data, fitted.model, fs)
    meta = {"algorithm": algorithm, "params": dict(PARAMS.__dict__),
            "identity_weight": fs.identity_weight, "precision_at_10": 0.2,
            "incremental_runs": incremental_runs}
    modelfile.save(models_dir, data.tenant, "v1", model, meta)
    modelfile.mark_current(models_dir, data.tenant, "v1")
    return model.to_arrays()


def _current(models_dir: Path, tenant: str) -> Saved:
    """The saved model as the pipeline hands it to ``prepare``."""
    version = modelfile.current_version(models_dir, tenant)
    return Saved(version, *modelfile.load(models_dir, tenant, version))


@pytest.fixture
def exports():
    """An old and a new export of one tenant: 20 users and 6 items removed, 40 users and 12
    items added, both reordered, and 15 % more interactions among those who stayed."""
    everything = make_export(n_users=240, n_items=72, per_user=10, seed=5)
    rng = np.random.default_rng(1)
    later = rng.random(len(everything.interactions)) < 0.15
    old = reindex(everything, np.arange(200), np.arange(60), keep_pairs=~later)
    new = reindex(everything, rng.permutation(np.arange(20, 240)),
                  rng.permutation(np.arange(6, 72)))
    return old, new


def test_warm_model_carries_each_feature_by_name_when_users_and_items_change(tmp_path, exports):
    old, new = exports
    arrays = _save_fitted(tmp_path, old)
    fs = features.build(new, "hybrid")
    # When the warm start is prepared for the new export
    warm, why = prepare(_current(tmp_path, new.tenant), new, fs, "hybrid",
                        dict(PARAMS.__dict__), max_runs=3)
    assert warm is not None, why
    model = train.warm_model(PARAMS, fs, warm)
    # Then every feature both exports share has its saved embedding, bias and optimiser state
    saved_rows = {name: row for row, name in enumerate(arrays["user_feature_names"].tolist())}
    carried = new_features = 0
    for row, name in enumerate(fs.user_feature_names):
        if name in saved_rows:
            old_row = saved_rows[name]
            assert np.array_equal(model.user_embeddings[row],
                                  arrays["user_feature_embeddings"][old_row]), name
            assert model.user_biases[row] == arrays["user_feature_biases"][old_row]
            assert np.array_equal(model.user_embedding_gradients[row],
                                  arrays["user_embedding_gradients"][old_row])
            carried += 1
        else:
            # And a feature the saved model never had starts as LightFM starts one
            assert model.user_biases[row] == 0.0 and model.user_bias_gradients[row] == 1.0
            new_features += 1
    assert carried > 150 and new_features >= 40  # 180 users stayed, 40 are new
    item_rows = {name: row for row, name in enumerate(arrays["item_feature_names"].tolist())}
    for key in new.items.keys:
        if key in item_rows:
            assert np.array_equal(model.item_embeddings[fs.item_feature_names.index(key)],
                                  arrays["item_feature_embeddings"][item_rows[key]])
    # And the pairs the saved model knew are found again under the new rows
    known = warm.old_pairs.tocoo()
    found = {(int(new.users.ids[u]), new.items.keys[i])
             for u, i in zip(known.row.tolist(), known.col.tolist(), strict=True)}
    assert found == _pairs(old) & _pairs(new)


def test_new_pair_split_holds_out_only_unseen_pairs_and_keeps_every_user_trainable(
        tmp_path, exports):
    old, new = exports
    _save_fitted(tmp_path, old)
    fs = features.build(new, "hybrid")
    warm, _ = prepare(_current(tmp_path, new.tenant), new, fs, "hybrid",
                      dict(PARAMS.__dict__), max_runs=3)
    full = fs.interactions.tocsr()
    train_part, held_out = split_new_pairs(full, warm.old_pairs, 0.2, seed=0)
    # Held-out pairs are new, and together with the training part they are the whole export
    assert held_out.multiply(warm.old_pairs).nnz == 0
    assert held_out.multiply(train_part).nnz == 0
    assert train_part.nnz + held_out.nnz == full.nnz
    assert held_out.nnz > 0
    # No user is left without a training pair
    active = np.diff(full.indptr) > 0
    assert (np.diff(train_part.indptr)[active] > 0).all()


def test_mf_models_carry_their_identity_rows_too(tmp_path, exports):
    old, new = exports
    arrays = _save_fitted(tmp_path, old, "mf")
    fs = features.build(new, "mf")
    warm, why = prepare(_current(tmp_path, new.tenant), new, fs, "mf", dict(PARAMS.__dict__),
                        max_runs=3)
    assert warm is not None, why
    model = train.warm_model(PARAMS, fs, warm)
    user_id = int(new.users.ids[0])
    old_row = old.users.ids.tolist().index(user_id) if user_id in old.users.ids else None
    if old_row is not None:
        assert np.array_equal(model.user_embeddings[0], arrays["user_feature_embeddings"][old_row])
    assert model.user_embeddings.shape[0] == len(new.users)


def test_an_incremental_fit_trains_on_the_saved_share_and_leaves_the_callers_features(
        tmp_path, exports):
    old, new = exports
    _save_fitted(tmp_path, old)  # saved with the default identity share
    fs = features.build(new, "hybrid", identity_weight=0.8)
    before = fs.user_features.copy()
    warm, why = prepare(_current(tmp_path, new.tenant), new, fs, "hybrid", dict(PARAMS.__dict__),
                        max_runs=3)
    assert warm is not None, why
    fitted = train.fit_incremental(fs, PARAMS, warm, 1, min_held_out=1)
    assert not isinstance(fitted, str), fitted
    # The model is trained on the rows at the saved model's share, which the result returns
    assert fitted.features.identity_weight == warm.identity_weight == features.IDENTITY_WEIGHT
    expected = fs.user_parts.combine(warm.identity_weight)
    assert abs(fitted.features.user_features - expected).max() == 0
    # And the caller's features are left at the share they were built with
    assert fs.identity_weight == 0.8
    assert abs(fs.user_features - before).max() == 0


@pytest.mark.parametrize("change, reason", [
    ({"algorithm": "partial"}, "trained as 'hybrid'"),
    ({"max_runs": 0}, "ML_INCREMENTAL_RUNS=0"),
    ({"components": 16}, "components"),
    ({"incremental_runs": 3}, "3 incremental runs since the last full fit"),
])
def test_a_warm_start_is_refused_when_it_would_not_be_sound(tmp_path, exports, change, reason):
    old, new = exports
    _save_fitted(tmp_path, old, incremental_runs=change.get("incremental_runs", 0))
    algorithm = change.get("algorithm", "hybrid")
    params = dict(PARAMS.__dict__, components=change.get("components", PARAMS.components))
    warm, why = prepare(_current(tmp_path, new.tenant), new, features.build(new, algorithm),
                        algorithm, params, max_runs=change.get("max_runs", 3))
    assert warm is None and reason in why


def test_a_mostly_new_export_is_fit_from_scratch(tmp_path, exports):
    old, _ = exports
    _save_fitted(tmp_path, old)
    # Given an export of the same tenant where almost every pair is new
    other = make_export(n_users=200, n_items=60, per_user=10, seed=99)
    saved = _current(tmp_path, other.tenant)
    warm, why = prepare(saved, other, features.build(other, "hybrid"), "hybrid",
                        dict(PARAMS.__dict__), max_runs=3)
    assert warm is None and "were known to the saved model" in why


def _why_not(settings: config.Settings, data) -> str:
    """The pipeline's reason for a full fit: the saved model as it loads it, then prepare."""
    fs = features.build(data, "hybrid")
    warm, why = prepare(pipeline._saved(settings, data.tenant), data, fs, "hybrid",
                        dict(PARAMS.__dict__), settings.incremental_runs)
    assert warm is None
    return why


def test_a_missing_unreadable_or_stateless_saved_model_means_a_full_fit_and_says_why(
        base_env, exports):
    old, new = exports
    settings = _settings(base_env)
    assert _why_not(settings, new) == "no saved model"
    _save_fitted(settings.models_dir, old)
    # A saved model that cannot be read: its arrays are not a zip
    npz = modelfile.tenant_dir(settings.models_dir, old.tenant) / "v1.npz"
    good = npz.read_bytes()
    npz.write_bytes(b"not a zip")
    assert _why_not(settings, new).startswith("the saved model v1 cannot be read (")
    # With incremental training off the files are not even read
    assert "ML_INCREMENTAL_RUNS=0" in _why_not(_settings(base_env, ML_INCREMENTAL_RUNS="0"), new)
    # A model saved before incremental training kept the optimiser state
    npz.write_bytes(good)
    model, meta = modelfile.load(settings.models_dir, old.tenant, "v1")
    for side in ("user", "item"):
        for name in ("embedding_gradients", "bias_gradients", "embedding_momentum",
                     "bias_momentum"):
            setattr(model.features(side), name, None)
    modelfile.save(settings.models_dir, old.tenant, "v1", model, meta)
    assert "no optimiser state" in _why_not(settings, new)


# The pipeline end to end, from CSV exports


@pytest.fixture(scope="module")
def csv_exports(tmp_path_factory) -> tuple[Path, Path]:
    """The same tenant twice: ``before`` lacks a quarter of the interaction rows of ``after``."""
    after = tmp_path_factory.mktemp("after")
    demo.write_demo_export(after, tenants=1, users=200, items=60, interactions=4000, seed=8)
    before = tmp_path_factory.mktemp("before")
    for name in ("tenants.csv", "user_data_0.csv", "item_data_0.csv"):
        (before / name).write_bytes((after / name).read_bytes())
    lines = (after / "user_interactions_0.csv").read_text().splitlines()
    rng = np.random.default_rng(0)
    kept = [lines[0]] + [line for line in lines[1:] if rng.random() > 0.25]
    (before / "user_interactions_0.csv").write_text("\n".join(kept) + "\n")
    return before, after


def _settings(base_env: dict[str, str], **extra: str) -> config.Settings:
    return config.from_env({**base_env, "ML_TOP_K": "20", **extra})


def test_retraining_on_a_grown_export_continues_the_saved_model(base_env, fake_redis,
                                                                csv_exports):
    before, after = csv_exports
    settings = _settings(base_env)
    first = pipeline.train_tenant(settings, fake_redis, "0", export_dir=before, params=PARAMS)
    assert first.status == "published", first.message
    first_meta = versions.current_meta(fake_redis, "0")
    assert first_meta["fit"] == "full"
    # When the grown export is trained
    second = pipeline.train_tenant(settings, fake_redis, "0", export_dir=after, params=PARAMS)
    # Then it starts from the saved model and says so, with its baseline on the same pairs
    assert second.status == "published", second.message
    meta = versions.current_meta(fake_redis, "0")
    assert meta["fit"] == "incremental" and meta["validation_pairs"] == "new"
    assert meta["incremental_from"] == first.version and meta["incremental_runs"] == "1"
    assert 0.0 <= float(meta["warm_baseline_precision_at_10"]) <= 1.0
    # And the last full fit's figure is carried for the next full fit's gate
    assert float(meta["full_fit_precision_at_10"]) == float(first_meta["precision_at_10"])
    assert int(meta["epochs"]) <= PARAMS.incremental_max_epochs
    # And every user of the new export has a list, users only in it included
    version = second.version
    data = export.load_tenant(after, "0")
    for user_id in data.users.ids.tolist():
        blob = fake_redis.hget(keys.user_bucket("0", version, user_id), str(user_id))
        assert blob is not None and packing.unpack_all(blob), user_id
    # And the model saved for the next run holds the optimiser state
    model, _ = modelfile.load(settings.models_dir, "0", version)
    arrays = model.to_arrays()
    assert "user_embedding_gradients" in arrays and "item_bias_momentum" in arrays


def test_force_brings_back_a_full_fit(base_env, fake_redis, csv_exports):
    before, after = csv_exports
    settings = _settings(base_env)
    pipeline.train_tenant(settings, fake_redis, "0", export_dir=before, params=PARAMS)
    result = pipeline.train_tenant(settings, fake_redis, "0", export_dir=after, params=PARAMS,
                                   force=True)
    assert result.status == "published", result.message
    meta = versions.current_meta(fake_redis, "0")
    assert meta["fit"] == "full" and meta["incremental_runs"] == "0"


def test_the_gate_compares_an_incremental_run_with_the_saved_model_on_the_same_pairs():
    result = pipeline.TenantResult("0", "published", "")
    result.metrics = {"precision_at_10": 0.30, "warm_baseline_precision_at_10": 0.40}
    # The published figure (measured on other pairs) is not what the run is held to
    assert promotion.gate({"precision_at_10": "0.10"}, result) is not None
    result.metrics["warm_baseline_precision_at_10"] = 0.32
    assert promotion.gate({"precision_at_10": "0.90"}, result) is None


def test_a_full_fit_after_incremental_runs_is_held_to_the_last_full_fit():
    result = pipeline.TenantResult("0", "published", "")
    result.metrics = {"precision_at_10": 0.25}
    published = {"precision_at_10": "0.50", "full_fit_precision_at_10": "0.26"}
    assert promotion.gate(published, result) is None
    published["full_fit_precision_at_10"] = "0.30"
    assert "below 90%" in promotion.gate(published, result)
