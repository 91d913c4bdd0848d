"""The sparse item-item part: each item's nearest items by cosine, EASE^R fitted on them, and
the sparse matrices that carry it, checked against dense computations on random histories."""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.model import itemitem, neighbours
from recommender.model.itemitem import ItemItem


@st.composite
def histories(draw, max_users: int = 30, max_items: int = 14) -> sp.csr_matrix:
    n_users = draw(st.integers(1, max_users))
    n_items = draw(st.integers(2, max_items))
    density = draw(st.floats(0.0, 0.9))
    seed = draw(st.integers(0, 2**31 - 1))
    dense = np.random.default_rng(seed).random((n_users, n_items)) < density
    return sp.csr_matrix(dense.astype(np.float32))


def _dense_cosine(history: sp.csr_matrix) -> np.ndarray:
    co = (history.T @ history).toarray().astype(np.float64)
    norm = np.sqrt(np.maximum(np.diag(co), 1.0))
    return co / norm[:, None] / norm[None, :]


@settings(max_examples=60, deadline=None)
@given(histories(), st.integers(1, 15))
def test_nearest_are_the_items_of_largest_cosine_ties_to_the_lower_column(history, k):
    near = neighbours.nearest(neighbours.gram(history), k)
    cosine = _dense_cosine(history)
    for item in range(history.shape[1]):
        others = [j for j in range(history.shape[1]) if j != item and cosine[item, j] > 0]
        expected = sorted(others, key=lambda j: (-cosine[item, j], j))[:near.k_max]
        found = [j for j in near.index[item] if j >= 0]
        assert found == expected
        np.testing.assert_allclose(near.cosine[item, :len(found)], cosine[item, found],
                                   rtol=1e-6)


@settings(max_examples=60, deadline=None)
@given(histories(), st.integers(1, 15), st.floats(0.5, 500.0))
def test_each_column_is_the_ridge_regression_on_its_neighbours(history, k, lam):
    # Given an item j and its neighbours N, the weights b solve (G_NN + lambda I) b = G_Nj
    co = neighbours.gram(history)
    near = neighbours.nearest(co, k)
    part = neighbours.fit(near, [(k, lam)])[(min(k, near.k_max), lam)]
    gram = co.toarray().astype(np.float64)
    weights = part.weights.toarray().astype(np.float64)
    for item in range(gram.shape[0]):
        n = [j for j in near.index[item] if j >= 0]
        assert set(np.flatnonzero(part.weights[:, [item]].toarray().ravel() != 0)) <= set(n)
        if not n:
            continue
        system = gram[np.ix_(n, n)] + lam * np.eye(len(n))
        expected = np.linalg.solve(system, gram[n, item])
        np.testing.assert_allclose(weights[n, item], expected, rtol=1e-4, atol=1e-5)


def test_every_item_a_neighbour_is_the_dense_closed_form():
    rng = np.random.default_rng(0)
    history = sp.csr_matrix((rng.random((300, 40)) < 0.4).astype(np.float32))
    co = neighbours.gram(history)
    near = neighbours.nearest(co, 39)
    assert (near.index >= 0).all()  # every pair co-occurs at this density
    part = neighbours.fit(near, [(39, 5.0)])[(39, 5.0)]
    dense = itemitem.ease_weights(co.toarray().astype(np.float64), 5.0)
    np.testing.assert_allclose(part.weights.toarray(), dense, atol=1e-5)


def test_settings_share_one_gathering_and_batches_and_threads_change_nothing(monkeypatch):
    rng = np.random.default_rng(1)
    history = sp.csr_matrix((rng.random((200, 60)) < 0.15).astype(np.float32))
    near = neighbours.nearest(neighbours.gram(history), 20)
    wanted = [(5, 10.0), (20, 10.0), (20, 100.0)]
    whole = neighbours.fit(near, wanted, threads=1)
    # Given batches of one item each, solved on two threads, the Gram entries found by binary
    # search in the sparse matrix rather than read from a dense copy
    monkeypatch.setattr(neighbours, "BLOCK_FLOATS", 1)
    monkeypatch.setattr(neighbours, "DENSE_LOOKUP", 0)
    near = neighbours.nearest(neighbours.gram(history), 20)
    split = neighbours.fit(near, wanted, threads=2)
    for setting in wanted:
        assert (whole[setting].weights != split[setting].weights).nnz == 0
    # A smaller k is the leading corner: its pattern is a subset of the larger one's
    small, large = whole[(5, 10.0)].weights, whole[(20, 10.0)].weights
    assert (small.astype(bool) > large.astype(bool)).nnz == 0


@settings(max_examples=40, deadline=None)
@given(histories(), st.integers(0, 2**31 - 1))
def test_permuted_part_is_the_dense_permutation_with_one_pattern(history, seed):
    co = neighbours.gram(history)
    part = neighbours.fit(neighbours.nearest(co, 4), [(4, 3.0)])[(min(4, co.shape[0] - 1), 3.0)]
    perm = np.random.default_rng(seed).permutation(co.shape[0])
    moved = part.permuted(perm)
    np.testing.assert_array_equal(moved.weights.toarray(),
                                  part.weights.toarray()[np.ix_(perm, perm)])
    np.testing.assert_array_equal(moved.cosine.toarray(),
                                  part.cosine.toarray()[np.ix_(perm, perm)])
    np.testing.assert_array_equal(moved.weights.indptr, moved.cosine.indptr)
    np.testing.assert_array_equal(moved.weights.indices, moved.cosine.indices)


def test_the_cosine_is_stored_for_exactly_the_weighted_pairs():
    rng = np.random.default_rng(2)
    history = sp.csr_matrix((rng.random((100, 30)) < 0.2).astype(np.float32))
    co = neighbours.gram(history)
    part = neighbours.fit(neighbours.nearest(co, 6), [(6, 20.0)])[(6, 20.0)]
    rows = np.repeat(np.arange(30), np.diff(part.weights.indptr))
    expected = neighbours.cosine_at(co, rows, part.weights.indices)
    np.testing.assert_allclose(part.cosine.data, expected, rtol=1e-6)
    assert np.all(rows != part.weights.indices)  # no item is its own neighbour


def test_dense_part_stores_every_pair_but_the_diagonal():
    co = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 2.0], [0.0, 2.0, 4.0]])
    weights = itemitem.ease_weights(co, 1.0)
    part = ItemItem.dense(weights, co)
    assert part.weights.nnz == 6
    np.testing.assert_allclose(part.weights.toarray(), weights, atol=1e-7)
    assert part.cosine[1, 2] == pytest.approx(2.0 / np.sqrt(8.0))


def test_heavy_users_are_sampled_down_for_the_gram_matrix():
    history = sp.csr_matrix(np.ones((3, 50), np.float32))
    history[2, 10:] = 0
    history.eliminate_zeros()
    capped = neighbours.capped(history, limit=20, seed=0)
    assert np.diff(capped.indptr).tolist() == [20, 20, 10]
    assert (capped > history).nnz == 0  # a subset of each user's items
    # And the same seed samples the same items
    assert (capped != neighbours.capped(history, limit=20, seed=0)).nnz == 0
