"""The saved model type owns the saved file's arrays and the ``model`` hash: a fit saves the arrays
it always saved, files written before the type still load, the lists file keeps the published
values batch by batch."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import scipy.sparse as sp

from published.savedmodel import ItemVectors, SavedModel
from recommender.model import features, rerank, rerankfeatures, saving, train
from recommender.model.itemitem import ItemItem
from recommender.publish import listsfile, modelfile
from tests.factories import make_export, saved_model

PARAMS = train.TrainParams(components=4, max_epochs=2, patience=1)


def _old_saved_arrays(data, model, fs, item_item=None, blend_weight=0.0,
                      ranker=None) -> dict[str, np.ndarray]:
    """``release.saved_arrays`` as it was before the saved model type: the reference format."""
    _, user_emb, item_bias, item_emb = train.representations(model, fs)
    positives = fs.interactions.tocsr()
    popularity = np.diff(positives.tocsc().indptr).astype(np.float32) / max(len(data.users), 1)
    user_names = fs.user_feature_names or [f"user:{u}" for u in data.users.ids]
    item_names = fs.item_feature_names or list(data.items.keys)
    blend = ({} if item_item is None or blend_weight == 0.0 else
             {"item_item_indptr": item_item.weights.indptr.astype(np.int64),
              "item_item_indices": item_item.weights.indices.astype(np.int32),
              "item_item_data": item_item.weights.data.astype(np.float32),
              "blend_weight": np.asarray(blend_weight, np.float32),
              "item_item_cosine": item_item.cosine.data.astype(np.float32)})
    if blend and ranker is not None:
        rows = np.repeat(np.arange(positives.shape[0]), np.diff(positives.indptr))
        repeated = np.asarray(fs.repeats.tocsr()[rows, positives.indices]).ravel()
        blend.update(ranker=ranker.as_array(), positives_repeats=repeated.astype(np.uint8))
    parameters = {}
    for side in ("user", "item"):
        for p in ("embeddings", "biases", "embedding_gradients", "bias_gradients",
                  "embedding_momentum", "bias_momentum"):
            name = f"{side}_feature_{p}" if p in ("embeddings", "biases") else f"{side}_{p}"
            parameters[name] = getattr(model, f"{side}_{p}").astype(np.float32)
    return {
        **blend,
        "user_ids": data.users.ids.astype(np.int64),
        "user_emb": user_emb,
        "item_keys": np.asarray(data.items.keys, dtype=str),
        "item_numbers": data.items.numbers.astype(np.uint32),
        "item_types": data.items.types.astype(np.uint8),
        "item_emb": item_emb,
        "item_bias": item_bias,
        "positives_indptr": positives.indptr.astype(np.int64),
        "positives_indices": positives.indices.astype(np.int32),
        "popularity": popularity,
        **parameters,
        "user_feature_names": np.asarray(user_names, dtype=str),
        "item_feature_names": np.asarray(item_names, dtype=str),
    }


def _entries(path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def _assert_same_arrays(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    assert list(got) == list(want)  # names and order: the zip entries of the .npz
    for name, array in want.items():
        assert got[name].dtype == array.dtype, name
        assert np.array_equal(got[name], array), name


@pytest.fixture(scope="module")
def fitted_parts():
    """A small fit with every optional part: the item-item blend and a re-ranker."""
    data = make_export(n_users=60, n_items=30, per_user=6, seed=3)
    fs = features.build(data, "hybrid")
    fitted = train.fit_fixed(fs, PARAMS, epochs=2, num_threads=1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, len(rerankfeatures.FEATURES))).astype(np.float32)
    x[:, rerankfeatures.TYPE_FEATURE] = rng.integers(0, 5, 300)
    ranker = rerank.train_ranker(x, x[:, 3] > 0, threads=1, seed=0)
    dense = rng.normal(size=(len(data.items), len(data.items)))
    item_item = ItemItem.dense(dense, np.abs(dense) + np.eye(len(dense)))
    return data, fitted.model, fs, item_item, 0.3, ranker


@pytest.mark.parametrize("parts", ["lightfm", "blend", "reranked"])
def test_a_fit_saves_the_arrays_it_saved_before_the_type_with_each_optional_part(
        fitted_parts, parts):
    data, model, fs, item_item, weight, ranker = fitted_parts
    extra = {"lightfm": (), "blend": (item_item, weight),
             "reranked": (item_item, weight, ranker)}[parts]
    saved = saving.saved_model(data, model, fs, *extra)
    _assert_same_arrays(saved.to_arrays(), _old_saved_arrays(data, model, fs, *extra))
    assert (saved.blend is None) == (parts == "lightfm")
    assert (saved.rerank is None) == (parts != "reranked")


def test_a_model_file_written_with_a_dense_item_item_part_loads_with_the_same_weights(
        fitted_parts, tmp_path):
    data, model, fs, item_item, weight, ranker = fitted_parts
    arrays = saving.saved_model(data, model, fs, item_item, weight, ranker).to_arrays()
    for name in ("item_item_indptr", "item_item_indices", "item_item_data", "item_item_cosine"):
        del arrays[name]
    dense = item_item.weights.toarray()
    arrays["item_item"] = dense  # the format before the sparse part
    loaded = SavedModel.from_arrays(arrays)
    n = len(dense)
    restored = sp.csr_matrix((loaded.blend.weights, loaded.blend.indices, loaded.blend.indptr),
                             shape=(n, n))
    np.testing.assert_array_equal(restored.toarray(), dense)
    assert loaded.blend.cosine is None and loaded.rerank is not None


def test_an_item_item_part_that_is_not_a_sparse_matrix_is_refused(fitted_parts):
    data, model, fs, item_item, weight, ranker = fitted_parts
    arrays = saving.saved_model(data, model, fs, item_item, weight).to_arrays()
    arrays["item_item_indices"] = arrays["item_item_indices"] + len(data.items)
    with pytest.raises(ValueError, match="item-item part"):
        SavedModel.from_arrays(arrays)


def test_a_model_file_written_before_the_type_loads_and_is_saved_again_unchanged(
        fitted_parts, tmp_path):
    data, model, fs, item_item, weight, ranker = fitted_parts
    old = _old_saved_arrays(data, model, fs, item_item, weight, ranker)
    # Given a model saved the old way: np.savez of the dict, with its JSON sidecar
    folder = modelfile.tenant_dir(tmp_path, "0")
    folder.mkdir(parents=True)
    np.savez(folder / "old.npz", **old)
    (folder / "old.json").write_text('{"status": "trained"}')
    # When it is loaded
    loaded, meta = modelfile.load(tmp_path, "0", "old")
    # Then every part is there, the optional ones too
    assert meta == {"status": "trained"} and loaded.rerank is not None
    assert loaded.blend.weight == float(np.float32(weight))
    assert rerank.Ranker.from_array(loaded.rerank.ranker).text == ranker.text
    assert loaded.user_features.has_optimiser_state
    # And saving it again writes the same arrays under the same names
    modelfile.save(tmp_path, "0", "new", loaded, meta)
    assert _entries(folder / "new.npz") == _entries(folder / "old.npz")
    with np.load(folder / "new.npz") as again:
        _assert_same_arrays({name: again[name] for name in again.files}, old)


def test_a_file_without_optimiser_state_loads_and_says_so(tmp_path):
    arrays = saved_model(optimiser_state=False).to_arrays()
    assert "user_embedding_gradients" not in arrays
    loaded = SavedModel.from_arrays(arrays)
    assert not loaded.user_features.has_optimiser_state
    assert set(loaded.user_features.by_parameter()) == {"embeddings", "biases"}


def test_a_file_missing_a_part_every_model_has_cannot_be_read(tmp_path):
    arrays = saved_model().to_arrays()
    del arrays["item_feature_biases"]
    folder = modelfile.tenant_dir(tmp_path, "0")
    folder.mkdir(parents=True)
    np.savez(folder / "v1.npz", **arrays)
    (folder / "v1.json").write_text("{}")
    with pytest.raises(ValueError, match="item_feature_biases"):
        modelfile.load(tmp_path, "0", "v1")


def test_the_model_hash_decodes_to_the_item_side_fold_in_scores_with():
    model = saved_model(n_items=11, dim=3)
    fields = model.model_hash()
    items = ItemVectors.from_model_hash(fields)
    assert np.array_equal(items.numbers, model.item_numbers)
    assert np.array_equal(items.types, model.item_types)
    assert np.array_equal(items.embeddings, model.item_emb)
    assert np.array_equal(items.biases, model.item_bias)
    assert fields["user_feature_names"].decode().count("user:") == len(model.user_ids)
    assert ItemVectors.from_model_hash({**fields, "item_biases": None}) is None


def _lists(batches: int) -> listsfile.Lists:
    users = [[(100 * b + i, bytes([1, 1, i, 0]) + b"x" * (i % 3)) for i in range(5)]
             for b in range(batches)]
    items = [[(f"engage_article{b}{i}", b * 10 + i, bytes([1, 1, i, 0])) for i in range(3)]
             for b in range(batches)]
    return listsfile.Lists(20, b"\x01\x05" + bytes(10), users, items)


def test_the_lists_file_gives_back_every_value_in_its_batches(tmp_path):
    written = _lists(3)
    with (tmp_path / "lists.npz").open("wb") as handle:
        counts = listsfile.write(handle, listsfile.Lists(
            written.top_k, written.popular, iter(written.users), iter(written.items)))
    assert counts == {"users": 15, "items": 9}
    names = _entries(tmp_path / "lists.npz")
    # One group of entries per batch: the lists are never gathered into one array
    assert sum(n.endswith(".ids.npy") for n in names) == 3
    with listsfile.read(tmp_path / "lists.npz") as read:
        assert (read.top_k, read.popular) == (20, written.popular)
        assert list(read.users) == written.users
        assert list(read.items) == written.items


def test_the_lists_file_is_written_as_the_batches_come(tmp_path):
    path = tmp_path / "lists.npz"
    sizes = []

    def users():
        for batch in _lists(3).users:
            yield batch
            sizes.append(path.stat().st_size)  # the writer is done with the batch

    with path.open("wb", buffering=0) as handle:
        listsfile.write(handle, listsfile.Lists(20, b"\x01\x00", users(), []))
    # Then each batch reached the file before the next one was computed
    assert sizes[0] < sizes[1] < sizes[2]


def test_a_file_that_is_not_a_lists_file_is_refused(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(ValueError), listsfile.read(tmp_path / "x.npy"):
        pass
