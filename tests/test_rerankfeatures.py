"""The re-ranker's candidates and features on sparse item-item inputs: against brute force on
the dense form of the same matrices, and, with every pair stored, equal to the dense features."""

from unittest import mock

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.model import itemitem
from recommender.model import rerankfeatures as rf


def _history(n_users: int, n_items: int, density: float, seed: int) -> sp.csr_matrix:
    matrix = sp.random(n_users, n_items, density=density, random_state=seed, format="csr",
                       dtype=np.float32)
    matrix.data[:] = 1.0
    return matrix


def every_pair(matrix: np.ndarray) -> sp.csr_matrix:
    """A dense matrix as a float32 CSR that stores every entry, zeros included."""
    n_rows, n_cols = matrix.shape
    return sp.csr_matrix((np.asarray(matrix, np.float32).ravel(),
                          np.tile(np.arange(n_cols), n_rows),
                          np.arange(0, n_rows * n_cols + 1, n_cols)), shape=matrix.shape)


def every_pair_signals(history: sp.csr_matrix, types: np.ndarray, weight: float = 1.0,
                       repeats: sp.csr_matrix | None = None) -> rf.Signals:
    """EASE^R's weights and the cosine, every pair stored: the dense matrices as they were."""
    repeats = history if repeats is None else repeats
    co = itemitem.gram(history)
    norm = np.sqrt(np.maximum(np.diag(co), 1.0))  # an item nobody used: a zero row either way
    return rf.signals(history, repeats, every_pair(itemitem.ease_weights(co, 5.0)),
                      every_pair(co / norm[:, None] / norm[None, :]), weight, types)


def neighbour_signals(history: sp.csr_matrix, types: np.ndarray, k: int,
                      repeats: sp.csr_matrix | None = None) -> rf.Signals:
    """As ``every_pair_signals`` but each item keeps only its ``k`` nearest by cosine."""
    full = every_pair_signals(history, types, repeats=repeats)
    cosine, weights = full.cosine.toarray(), full.item_item.toarray()
    np.fill_diagonal(cosine, -np.inf)
    nearest = np.sort(np.argsort(-cosine, axis=1, kind="stable")[:, :k], axis=1)
    np.fill_diagonal(cosine, 0.0)
    rows = np.repeat(np.arange(len(cosine)), k)
    indptr = np.arange(0, rows.size + 1, k)

    def stored(dense: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((dense[rows, nearest.ravel()], nearest.ravel().copy(), indptr),
                             shape=dense.shape)

    return rf.signals(history, repeats if repeats is not None else history, stored(weights),
                      stored(cosine), full.weight, types)


def dense_over_history(history: sp.csr_matrix, matrix: np.ndarray, columns: np.ndarray,
                       close: float) -> tuple[np.ndarray, np.ndarray]:
    """The reference: per user, the block of the dense matrix at (history, candidates)."""
    largest = np.zeros(columns.shape, np.float32)
    above = np.zeros(columns.shape, np.float32)
    for row in range(len(columns)):
        seen = history.indices[history.indptr[row]:history.indptr[row + 1]]
        if len(seen):
            block = matrix[np.ix_(seen, columns[row])]
            largest[row], above[row] = block.max(axis=0), (block > close).sum(axis=0)
    return largest, above


def test_candidates_are_each_types_best_unseen_items_by_the_blend_in_order():
    rng = np.random.default_rng(0)
    blend = rng.normal(size=(3, 12))
    types = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    blend[0, [0, 1, 2]] = -np.inf  # user 0 has seen three items of type 0
    blend[1, 5:8] = -np.inf  # user 1 has seen every item of type 1
    columns, rank, valid, blocks = rf._candidates(blend, types, 3)
    assert blocks == [(0, 3), (3, 6), (6, 9)]
    for row in range(3):
        for code, span in ((0, slice(0, 3)), (1, slice(3, 6)), (2, slice(6, 9))):
            members = np.flatnonzero(types == code)
            expected = members[np.argsort(-blend[row, members], kind="stable")][:3]
            got = columns[row, span]
            finite = np.isfinite(blend[row, expected])
            assert got[valid[row, span]].tolist() == expected[finite].tolist()
            assert rank[row, span].tolist() == [0, 1, 2]
    assert valid[0, :3].tolist() == [True, True, False]  # two unseen items of type 0 left
    assert not valid[1, 3:6].any()


@st.composite
def _over_history_cases(draw):
    n_users, n_items = draw(st.integers(1, 8)), draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dense = (rng.random((n_users, n_items)) < draw(st.floats(0, 0.6))).astype(np.float32)
    dense[rng.random(n_users) < 0.25] = 0  # some users without history
    history = sp.csr_matrix(dense)
    stored = rng.random((n_items, n_items)) < draw(st.floats(0, 1))
    values = rng.normal(size=(n_items, n_items)).astype(np.float32)
    if draw(st.booleans()):
        values[rng.random(values.shape) < 0.2] = 0.0  # explicitly stored zeros
    rows, cols = np.nonzero(stored)
    matrix = sp.csr_matrix((values[rows, cols], (rows, cols)), shape=(n_items, n_items))
    columns = rng.integers(0, n_items, (n_users, draw(st.integers(1, 6))))
    # Lookup tables of a few users' cells at a time, down to one user's
    cells = draw(st.sampled_from([1, n_items * 2, rf.CELLS]))
    return history, matrix, columns, draw(st.floats(-1.0, 1.0)), cells


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_over_history_cases())
def test_the_sparse_largest_and_close_count_over_history_equal_the_dense_ones(case):
    history, matrix, columns, close, cells = case
    with mock.patch.object(rf, "CELLS", cells):
        _sparse_over_history_equals_the_dense(history, matrix, columns, close)


def _sparse_over_history_equals_the_dense(history, matrix, columns, close):
    largest, above = rf._over_history(history, matrix, columns, close)
    want_largest, want_above = dense_over_history(history, matrix.toarray(), columns, close)
    np.testing.assert_array_equal(largest, want_largest)
    np.testing.assert_array_equal(above, want_above)
    alone, none = rf._over_history(history, matrix, columns)
    assert none is None
    np.testing.assert_array_equal(alone, want_largest)
    # A second matrix on the same pairs, read in the same pass
    other = matrix.copy()
    other.data = -2 * matrix.data + 0.5
    (largest, above), (second, none) = rf._over_pairs(history, matrix, [matrix.data, other.data],
                                                      columns, [close, None])
    np.testing.assert_array_equal(largest, want_largest)
    np.testing.assert_array_equal(above, want_above)
    np.testing.assert_array_equal(second, dense_over_history(history, other.toarray(), columns,
                                                             close)[0])


def test_an_unstored_pair_counts_as_zero_in_the_largest_over_history():
    # Items 0 and 1 in the history; item 2 stored only from item 0, at -0.5
    matrix = sp.csr_matrix(([-0.5, -0.25, -0.75], ([0, 0, 1], [2, 3, 3])), shape=(4, 4))
    history = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]], np.float32))
    largest, above = rf._over_history(history, matrix, np.array([[2, 3], [2, 3], [2, 3]]), -0.6)
    # user 0: item 1 stores nothing for 2 (0 > -0.5); both store 3 (-0.25); user 2: no history
    assert largest.tolist() == [[0.0, -0.25], [-0.5, -0.25], [0.0, 0.0]]
    assert above.tolist() == [[2, 1], [1, 1], [0, 0]]


def test_an_unstored_pair_is_compared_with_the_threshold_in_the_matrix_type():
    # -1e-60 is -0.0 in float32: a stored 0 is not above it, so an unstored one is not either
    history = sp.csr_matrix(np.ones((1, 2), np.float32))
    matrix = sp.csr_matrix(([0.0], ([0], [1])), shape=(2, 2), dtype=np.float32)
    _, above = rf._over_history(history, matrix, np.array([[1]]), -1e-60)
    _, want = dense_over_history(history, matrix.toarray(), np.array([[1]]), -1e-60)
    assert above.tolist() == want.tolist() == [[0.0]]


@pytest.mark.parametrize("pairs", ["every", "neighbours", "cosine on fewer pairs"])
def test_features_of_a_batch_match_their_definitions_on_the_dense_matrices(pairs):
    history = _history(6, 20, 0.3, seed=4)
    repeats = sp.csr_matrix(history.multiply(_history(6, 20, 0.5, seed=5)))
    repeats.eliminate_zeros()
    types = np.arange(20) % 3
    sig = (every_pair_signals(history, types, repeats=repeats) if pairs != "neighbours"
           else neighbour_signals(history, types, 4, repeats=repeats))
    if pairs == "cosine on fewer pairs":
        sig.cosine = neighbour_signals(history, types, 4, repeats=repeats).cosine
    cosine, weights = sig.cosine.toarray(), sig.item_item.toarray()
    lightfm = np.random.default_rng(6).normal(size=(6, 20)).astype(np.float32)
    b = rf.batch(lightfm.copy(), history, repeats, sig, n=4)
    x = b.features.reshape(6, b.columns.shape[1], len(rf.FEATURES))
    column = {name: i for i, name in enumerate(rf.FEATURES)}
    users_of_item = np.asarray(history.sum(axis=0)).ravel()
    largest_cosine, close = dense_over_history(history, cosine, b.columns, rf.CLOSE)
    largest_weight, _ = dense_over_history(history, weights, b.columns, rf.CLOSE)
    for row in range(6):
        seen = history[row].indices
        for j, item in enumerate(b.columns[row]):
            if not b.valid[row, j]:
                continue
            assert item not in seen
            f = x[row, j]
            assert f[column["lightfm"]] == pytest.approx(lightfm[row, item], abs=1e-5)
            assert f[column["log_history"]] == pytest.approx(np.log1p(len(seen)))
            assert f[column["type"]] == types[item]
            assert f[column["type_share"]] == pytest.approx(np.mean(types[seen] == types[item]))
            assert f[column["log_popularity"]] == pytest.approx(np.log1p(users_of_item[item]))
            expected_share = repeats[:, item].sum() / max(users_of_item[item], 1)
            assert f[column["item_repeat_share"]] == pytest.approx(expected_share)
            assert f[column["max_cosine"]] == pytest.approx(cosine[seen, item].max())
            assert f[column["close_items"]] == (cosine[seen, item] > rf.CLOSE).sum()
            assert f[column["max_weight"]] == pytest.approx(weights[seen, item].max())
            assert f[column["item_item"]] == pytest.approx(weights[seen, item].sum(), abs=1e-4)
    for name, want in (("max_cosine", largest_cosine), ("close_items", close),
                       ("max_weight", largest_weight)):
        np.testing.assert_array_equal(x[..., column[name]], want)


def test_the_cosine_diagonal_is_zeroed_and_its_pattern_kept():
    weights = sp.csr_matrix(np.array([[0.5, 0.25], [0.0, 0.75]], np.float32))
    cosine = sp.csr_matrix(([1.0, 0.5, 1.0], [0, 1, 1], [0, 2, 3]), shape=(2, 2),
                           dtype=np.float32)
    history = sp.csr_matrix(np.ones((1, 2), np.float32))
    sig = rf.signals(history, history, weights, cosine, 1.0, np.zeros(2, int))
    assert sig.cosine.toarray().tolist() == [[0.0, 0.5], [0.0, 0.0]]
    assert sig.cosine.indices.tolist() == [0, 1, 1] and sig.cosine.dtype == np.float32
    assert cosine.toarray()[0, 0] == 1.0  # the caller's matrix is left alone
    with pytest.raises(ValueError, match="differ in shape"):
        rf.signals(history, history, weights, sp.csr_matrix((2, 3)), 1.0, np.zeros(2, int))
