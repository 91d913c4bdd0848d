"""Restore republishes the saved lists without training code: no LightFM, LightGBM or
scikit-learn is imported for a model saved with its lists, and a model saved before the lists
were kept beside it still restores, by computing them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from published import keys, versions
from published.savedmodel import Blend, Rerank, SavedModel
from recommender.model import itemitem, rerank, rerankfeatures
from recommender.publish import listsfile, modelfile, precompute, restore
from runtime import config
from tests.factories import saved_model

ROOT = Path(__file__).resolve().parents[1]
TOP_K = 7
HEAVY = ("lightfm", "lightgbm", "sklearn", "scipy", "recommender.model")


def _reranked_model() -> SavedModel:
    """A saved model with every layer: LightFM's vectors, the item-item blend, a re-ranker."""
    model = saved_model(n_users=40, n_items=45)
    positives = precompute.embeddings(model).positives
    model.blend = Blend.from_dense(itemitem.ease_weights(itemitem.gram(positives), 4.0), 1.0)
    rng = np.random.default_rng(14)
    x = rng.normal(size=(500, len(rerankfeatures.FEATURES))).astype(np.float32)
    x[:, rerankfeatures.TYPE_FEATURE] = rng.integers(0, 5, 500)
    ranker = rerank.train_ranker(x, x[:, 3] + x[:, 10] > 0, threads=1, seed=0)
    repeats = (np.arange(len(model.positives_indices)) % 2).astype(np.uint8)
    model.rerank = Rerank(ranker.as_array(), repeats)
    return model


def _save(settings: config.Settings, tenant: str, model: SavedModel,
          with_lists: bool = True) -> str:
    version = versions.new_version()
    meta = {"status": "trained", "algorithm": "hybrid", "top_k": settings.top_k}
    lists = precompute.lists(model, settings.top_k) if with_lists else None
    modelfile.save(settings.models_dir, tenant, version, model, meta, lists)
    modelfile.mark_current(settings.models_dir, tenant, version)
    return version


def _published(client, tenant: str, model: SavedModel) -> dict[str, bytes]:
    """Every value of the tenant's current version, by logical name."""
    version = versions.current_version(client, tenant)
    values = {"popular": client.get(keys.popular(tenant, version)),
              **{f"model:{k.decode()}": v
                 for k, v in client.hgetall(keys.model(tenant, version)).items()}}
    for user in model.user_ids.tolist():
        values[f"user:{user}"] = client.hget(keys.user_bucket(tenant, version, user), str(user))
    for key, number in zip(model.item_keys.tolist(), model.item_numbers.tolist(), strict=True):
        values[f"item:{key}"] = client.hget(keys.item_bucket(tenant, version, number), key)
    return values


def _computed(client, settings: config.Settings, tenant: str,
              model: SavedModel) -> dict[str, bytes]:
    """What the list code publishes for the model, computed now."""
    from recommender.publish import release

    release.publish(client, tenant, versions.new_version(), model,
                    precompute.lists(model, settings.top_k), {"status": "trained"})
    return _published(client, tenant, model)


@pytest.fixture
def settings(base_env) -> config.Settings:
    return config.from_env({**base_env, "ML_TOP_K": str(TOP_K), "ML_NUM_THREADS": "1"})


def test_restore_in_a_fresh_process_imports_no_training_code_and_is_fast(
        settings, base_env, real_redis, real_redis_url):
    # Given a re-ranked model saved with its lists
    model = _reranked_model()
    _save(settings, "3", model)
    assert modelfile.lists_path(settings.models_dir, "3",
                                modelfile.current_version(settings.models_dir, "3")).exists()
    # When a fresh interpreter restores it
    code = (
        "import json, sys, time\n"
        "from recommender.publish.restore import restore\n"
        "from runtime import config, redisconn\n"
        "settings = config.from_env(json.loads(sys.argv[1]))\n"
        "client = redisconn.connect(settings)\n"
        "started = time.perf_counter()\n"
        "results = restore(settings, client)\n"
        "print(json.dumps({'seconds': time.perf_counter() - started,\n"
        "                  'statuses': [r.status for r in results],\n"
        "                  'modules': sorted(sys.modules)}))\n")
    env = {**base_env, "ML_TOP_K": str(TOP_K), "ML_REDIS_URL": real_redis_url}
    done = subprocess.run([sys.executable, "-c", code, json.dumps(env)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    # Then it published, with none of the training libraries or model code loaded
    assert report["statuses"] == ["published"]
    heavy = [m for m in report["modules"] if any(m == h or m.startswith(h + ".") for h in HEAVY)]
    assert heavy == []
    assert report["seconds"] < 1.0, report["seconds"]
    # And what it published is what the list code computes, re-ranker included
    restored = _published(real_redis, "3", model)
    real_redis.flushdb()
    assert restored == _computed(real_redis, settings, "3", model)


@pytest.mark.parametrize("why", ["saved without its lists", "another ML_TOP_K", "damaged"])
def test_a_model_without_usable_stored_lists_is_restored_by_computing_them(
        settings, base_env, fake_redis, why):
    # Given a model saved before the lists were kept beside it, saved for another top-K, or
    # whose lists file was damaged
    model = _reranked_model()
    if why == "another ML_TOP_K":
        _save(config.from_env({**base_env, "ML_TOP_K": "3"}), "4", model)
    else:
        version = _save(settings, "4", model, with_lists=why == "damaged")
        if why == "damaged":
            path = modelfile.lists_path(settings.models_dir, "4", version)
            path.write_bytes(path.read_bytes()[:1000])
    # When it is restored
    results = restore.restore(settings, fake_redis)
    assert [(r.tenant, r.status) for r in results] == [("4", "published")]
    # Then its lists are those computed for this ML_TOP_K
    restored = _published(fake_redis, "4", model)
    fake_redis.flushall()
    assert restored == _computed(fake_redis, settings, "4", model)


def test_restore_republishes_the_stored_lists_as_they_are(settings, fake_redis):
    # Given a saved model stored with another model's lists
    model, other = saved_model(seed=1), saved_model(seed=2)
    modelfile.save(settings.models_dir, "5", "v1", model, {"status": "trained"},
                   precompute.lists(other, TOP_K))
    modelfile.mark_current(settings.models_dir, "5", "v1")
    # When it is restored
    restore.restore(settings, fake_redis)
    # Then the users' lists and the popular lists are the stored ones, not recomputed
    restored = _published(fake_redis, "5", model)
    fake_redis.flushall()
    stored = _computed(fake_redis, settings, "5", other)
    assert all(restored[f"user:{u}"] == stored[f"user:{u}"] for u in model.user_ids.tolist())
    assert restored["popular"] == stored["popular"] != _computed(
        fake_redis, settings, "5", model)["popular"]


def test_old_versions_are_pruned_with_their_lists_files(settings):
    model = saved_model(n_users=12, n_items=20)
    saved = [_save(settings, "6", model) for _ in range(modelfile.KEEP_VERSIONS + 2)]
    folder = modelfile.tenant_dir(settings.models_dir, "6")
    kept = sorted(p.name for p in folder.iterdir() if p.name != "current")
    assert kept == sorted(f"{v}{suffix}" for v in saved[-modelfile.KEEP_VERSIONS:]
                          for suffix in (".npz", ".lists.npz", ".json"))


def test_a_failure_while_the_lists_are_written_leaves_no_file_of_the_version(settings):
    model = saved_model(n_users=12, n_items=20)
    lists = precompute.lists(model, TOP_K)

    def failing(users):
        yield from users
        raise OSError(28, "No space left on device")

    lists.users = failing(lists.users)
    with pytest.raises(OSError, match="No space left"):
        modelfile.save(settings.models_dir, "7", "v1", model, {}, lists)
    assert list(modelfile.tenant_dir(settings.models_dir, "7").iterdir()) == []


@pytest.mark.parametrize("damage", ["a flipped byte in an entry", "a batch entry missing"])
def test_a_lists_file_damaged_inside_is_refused_before_anything_is_published(
        settings, fake_redis, damage):
    # Given a re-ranked model whose lists file opens but is damaged inside
    model = _reranked_model()
    version = _save(settings, "8", model)
    path = modelfile.lists_path(settings.models_dir, "8", version)
    if damage == "a flipped byte in an entry":
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF  # inside the stored entries, before the zip's index
        path.write_bytes(bytes(raw))
    else:
        import zipfile

        with zipfile.ZipFile(path) as old, zipfile.ZipFile(path.with_suffix(".tmp"), "w") as new:
            for entry in old.infolist():
                if entry.filename != "users.0.blobs.npy":
                    new.writestr(entry, old.read(entry.filename))
        path.with_suffix(".tmp").replace(path)
    # When it is read, Then it is refused as a whole
    with pytest.raises(ValueError), listsfile.read(path):
        pass
    # And restore computes the lists again instead of failing the tenant
    results = restore.restore(settings, fake_redis)
    assert [(r.tenant, r.status) for r in results] == [("8", "published")]
    restored = _published(fake_redis, "8", model)
    fake_redis.flushall()
    assert restored == _computed(fake_redis, settings, "8", model)


def test_the_lists_are_written_after_the_json_so_a_kill_while_computing_them_is_pruned(
        settings):
    # Given a version whose lists are being computed
    model = saved_model(n_users=12, n_items=20)
    lists = precompute.lists(model, TOP_K)
    folder = modelfile.tenant_dir(settings.models_dir, "9")
    seen_while_computing: list[str] = []

    def watched(users):
        seen_while_computing.extend(sorted(p.name for p in folder.iterdir()))
        yield from users

    lists.users = watched(lists.users)
    modelfile.save(settings.models_dir, "9", "v1", model, {}, lists)
    # Then the model and its JSON were already whole: a process killed now leaves a version
    # that pruning knows, plus the lists' temporary file
    assert "v1.npz" in seen_while_computing and "v1.json" in seen_while_computing
    (folder / ".v2.lists.npz.killed").write_bytes(b"left by a killed writer")
    # And marking a version current removes such leftovers
    modelfile.mark_current(settings.models_dir, "9", "v1")
    assert not list(folder.glob(".*"))
