"""The re-ranker: the order it publishes, the cross-fitting that keeps its validation honest, and
its gate against the blend (its candidates and features: test_rerankfeatures)."""

import numpy as np
import pytest
import scipy.sparse as sp

from published.savedmodel import Blend, FeatureParameters, Rerank, SavedModel
from recommender.model import ensemble, itemitem, itemsearch, rerank
from recommender.model import rerankfeatures as rf
from recommender.model.ranking import ranking_metrics, split_per_user
from recommender.publish import precompute, topk
from tests.test_rerankfeatures import _history, dense_over_history, neighbour_signals
from tests.test_rerankfeatures import every_pair_signals as _signals
from tests.test_topk import _random_embeddings, assert_lists_rank_by


class _Constant:
    """A stand-in ranker that predicts one value for every candidate."""

    def __init__(self, value: float) -> None:
        self.value = value

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.full(len(features), self.value)


def test_ranked_puts_candidates_by_prediction_above_the_rest_in_blend_order():
    history = _history(4, 18, 0.2, seed=7)
    sig = _signals(history, np.arange(18) % 2)
    lightfm = np.random.default_rng(8).normal(size=(4, 18)).astype(np.float32)
    b = rf.batch(lightfm, history, history, sig, n=3)
    predicted = np.random.default_rng(9).random(b.columns.size)
    scores = rerank.ranked(b, predicted)
    for row in range(4):
        chosen = set(b.columns[row][b.valid[row]])
        seen = set(history[row].indices)
        rest = [i for i in range(18) if i not in chosen and i not in seen]
        assert all(np.isinf(scores[row, i]) and scores[row, i] < 0 for i in seen)
        if rest:
            assert min(scores[row, list(chosen)]) > max(scores[row, rest])
            order = sorted(rest, key=lambda i: -b.blend[row, i])
            assert sorted(rest, key=lambda i: -scores[row, i]) == order


def test_each_user_is_scored_by_the_half_that_did_not_learn_from_them():
    history = _history(6, 10, 0.3, seed=10)
    sig = _signals(history, np.zeros(10, int))
    lightfm = np.random.default_rng(11).normal(size=(6, 10)).astype(np.float32)
    score = rerank.cross_fitted(lambda rows: lightfm[rows].copy(), history, history, sig,
                                [_Constant(0.25), _Constant(0.75)])
    scores = score(np.arange(6))
    for row in range(6):
        best = scores[row][np.isfinite(scores[row])].max()
        # even rows learnt nothing from half 1, odd rows nothing from half 0
        assert best == (0.75 if row % 2 == 0 else 0.25)


def test_a_saved_ranker_predicts_exactly_what_the_trained_one_does():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(400, len(rf.FEATURES))).astype(np.float32)
    x[:, rf.TYPE_FEATURE] = rng.integers(0, 5, 400)
    y = (x[:, 0] + 0.3 * rng.normal(size=400)) > 0
    trained = rerank.train_ranker(x, y, threads=1, seed=0)
    loaded = rerank.Ranker.from_array(trained.as_array())
    assert np.array_equal(loaded.predict(x), trained.predict(x))


def _planted(n_users=300, n_items=60, seed=13):
    """A tenant whose held-out items are those most often used on more than one day: a signal
    only the re-ranker sees, as neither LightFM (noise here) nor co-occurrence carries it."""
    rng = np.random.default_rng(seed)
    history = (rng.random((n_users, n_items)) < 0.1).astype(np.float32)
    loved = rng.random(n_items) < 0.2
    repeats = history * (rng.random((n_users, n_items)) < np.where(loved, 0.9, 0.05))
    held = (rng.random((n_users, n_items)) < np.where(loved, 0.5, 0.01)) * (1 - history)
    train_part, held_out = sp.csr_matrix(history), sp.csr_matrix(held.astype(np.float32))
    noise = rng.normal(size=(n_users, n_items)).astype(np.float32)
    return train_part, sp.csr_matrix(repeats), held_out, noise, np.arange(n_items) % 3


def _measure(train_part, held_out):
    def measure(score):
        return ranking_metrics(score, train_part, held_out, k=10, with_auc=False)["precision"]
    return measure


@pytest.mark.parametrize("k", [None, 12])
def test_choose_keeps_a_ranker_that_finds_what_the_blend_misses(k):
    train_part, repeats, held_out, noise, types = _planted()
    sig = (_signals(train_part, types, repeats=repeats) if k is None
           else neighbour_signals(train_part, types, k, repeats=repeats))
    measure = _measure(train_part, held_out)
    blend = ensemble.blended(lambda rows: noise[rows].copy(), train_part,
                             itemitem.ItemItem(sig.item_item, sig.cosine), 1.0)
    chosen = rerank.choose(lambda rows: noise[rows].copy(), train_part, repeats, held_out, sig,
                           measure(blend), measure, threads=1, seed=0, max_users=10_000)
    assert chosen.ranker is not None, chosen.reason
    assert chosen.precision["reranked"] > 1.5 * chosen.precision["blend"]
    assert len(chosen.halves) == 2


def _chosen(sig, planted, max_users=10_000) -> rerank.Choice:
    train_part, repeats, held_out, noise, _ = planted
    return rerank.choose(lambda rows: noise[rows].copy(), train_part, repeats, held_out, sig,
                         0.0, _measure(train_part, held_out), threads=1, seed=0,
                         max_users=max_users)


def _same_choice(one: rerank.Choice, other: rerank.Choice) -> None:
    assert one.precision == other.precision
    assert [h.text for h in one.halves] == [h.text for h in other.halves]
    assert (one.ranker is None) == (other.ranker is None)
    assert one.ranker is None or one.ranker.text == other.ranker.text


def test_with_every_pair_stored_choose_is_what_the_dense_gather_chose(monkeypatch):
    planted = _planted()
    sig = _signals(planted[0], planted[4], repeats=planted[1])
    sparse = _chosen(sig, planted)

    def dense(history, matrix, columns, close=None):
        largest, above = dense_over_history(history, matrix.toarray(), columns,
                                            np.inf if close is None else close)
        return largest, None if close is None else above

    monkeypatch.setattr(rf, "_over_history", dense)
    _same_choice(sparse, _chosen(sig, planted))


@pytest.mark.parametrize("budget", [0, 400_000])  # nothing kept; the first batch only
def test_choose_measures_the_same_whether_its_users_features_are_kept_or_built_again(
        monkeypatch, budget):
    planted = _planted()
    sig = neighbour_signals(planted[0], planted[4], 12, repeats=planted[1])
    monkeypatch.setattr(rerank, "BATCH_USERS", 64)
    kept = _chosen(sig, planted, max_users=200)
    monkeypatch.setattr(rerank, "CACHE_BYTES", budget)
    _same_choice(kept, _chosen(sig, planted, max_users=200))


def test_the_cross_fitted_scores_of_kept_users_are_those_built_again():
    train_part, repeats, _, noise, types = _planted()
    sig = neighbour_signals(train_part, types, 12, repeats=repeats)
    known = rerank._Known(10**9)
    for rows in (np.arange(0, 40, 3), np.arange(50, 90, 2)):
        known.add(rows, rf.batch(noise[rows].copy(), train_part[rows], repeats[rows], sig))
    halves = [rerank.train_ranker(*_random_labelled(seed), threads=1, seed=0) for seed in (1, 2)]
    rows = np.arange(100)  # kept and not, mixed
    scores = {}
    for name, cache in (("kept", known), ("built", None)):
        scores[name] = rerank.cross_fitted(lambda r: noise[r].copy(), train_part, repeats, sig,
                                           halves, cache)(rows)
    assert scores["kept"].dtype == scores["built"].dtype == np.float32
    np.testing.assert_array_equal(scores["kept"], scores["built"])


def _random_labelled(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, len(rf.FEATURES))).astype(np.float32)
    x[:, rf.TYPE_FEATURE] = rng.integers(0, 5, 400)
    return x, x[:, 0] + x[:, 10] > 0


def test_choose_keeps_the_blend_when_the_ranker_is_no_better_on_validation():
    train_part, repeats, held_out, noise, types = _planted()
    sig = _signals(train_part, types, repeats=repeats)
    # Given a measure under which the blend is already perfect
    chosen = rerank.choose(lambda rows: noise[rows].copy(), train_part, repeats, held_out, sig,
                           1.0, lambda score: 0.5, threads=1, seed=0, max_users=10_000)
    assert chosen.ranker is None and "no better" in chosen.reason
    assert chosen.precision == {"blend": 1.0, "reranked": 0.5}


def test_choose_needs_held_out_pairs_among_the_candidates_of_both_halves():
    train_part, repeats, _, noise, types = _planted()
    sig = _signals(train_part, types, repeats=repeats)
    # One held-out pair, user 0's: the odd half has no positive label
    held_out = sp.csr_matrix(([1.0], ([0], [0])), shape=train_part.shape, dtype=np.float32)
    chosen = rerank.choose(lambda rows: noise[rows].copy(), train_part, repeats, held_out, sig,
                           0.1, lambda score: 1.0, threads=1, seed=0, max_users=10_000)
    assert chosen.ranker is None and "too few" in chosen.reason


def reranked_embeddings(n_users: int = 40, n_items: int = 45, seed: int = 1,
                        cold: int = 0) -> topk.Embeddings:
    """Random embeddings with every layer on; the first ``cold`` users have no history."""
    emb = _random_embeddings(n_users=n_users, n_items=n_items, seed=seed)
    positives = emb.positives.tolil()
    for row in range(min(cold, n_users)):
        positives.rows[row], positives.data[row] = [], []
    emb.positives = sp.csr_matrix(positives)
    co = itemitem.gram(emb.positives)
    emb.item_item = itemitem.ItemItem.dense(itemitem.ease_weights(co, 4.0), co)
    emb.blend_weight = 0.5
    repeats = emb.positives.copy()
    repeats.data[::3] = 0.0
    repeats.eliminate_zeros()
    emb.repeats = repeats
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(600, len(rf.FEATURES))).astype(np.float32)
    x[:, rf.TYPE_FEATURE] = rng.integers(0, 5, 600)
    emb.ranker = rerank.train_ranker(x, x[:, 3] - x[:, 10] > 0, threads=1, seed=seed)
    return emb


def test_user_lists_rank_by_the_re_ranked_score_per_type_without_seen_items():
    emb = reranked_embeddings()
    ranker = emb.ranker
    k = 5
    produced = dict(pair for batch in topk.user_lists(emb, k, batch=7) for pair in batch)
    lightfm = (emb.user_emb @ emb.item_emb.T + emb.item_bias).astype(np.float32)
    score = ensemble.scorer(lambda rows: lightfm[rows].copy(), emb.positives, emb.repeats,
                            emb.item_item, emb.blend_weight, ranker, emb.item_types)
    assert_lists_rank_by(emb, produced, score(np.arange(len(emb.user_ids))), k)


def test_the_re_ranker_survives_the_saved_arrays_and_publishes_the_same_lists():
    emb = reranked_embeddings()
    ranker = emb.ranker
    no_features = FeatureParameters(np.asarray(["none"]), np.zeros((1, 1), np.float32),
                                    np.zeros(1, np.float32))
    model = SavedModel(
        user_ids=emb.user_ids, user_emb=emb.user_emb, item_keys=np.asarray(emb.item_keys),
        item_numbers=emb.item_numbers, item_types=emb.item_types, item_emb=emb.item_emb,
        item_bias=emb.item_bias, positives_indptr=emb.positives.indptr,
        positives_indices=emb.positives.indices, popularity=emb.popularity,
        user_features=no_features, item_features=no_features,
        blend=Blend(emb.item_item.weights.indptr, emb.item_item.weights.indices,
                    emb.item_item.weights.data, emb.item_item.cosine.data, emb.blend_weight),
        rerank=Rerank(ranker.as_array(), np.asarray(
            emb.repeats[np.repeat(np.arange(len(emb.user_ids)), np.diff(emb.positives.indptr)),
                        emb.positives.indices]).ravel().astype(np.uint8)))
    restored = precompute.embeddings(SavedModel.from_arrays(model.to_arrays()))
    assert restored.ranker is not None and restored.repeats is not None
    assert (restored.repeats != emb.repeats).nnz == 0
    # the positives share their index arrays with the repeats' source: both must be intact
    assert (restored.positives != emb.positives).nnz == 0
    before = [b for batch in topk.user_lists(emb, 5) for b in batch]
    after = [b for batch in topk.user_lists(restored, 5) for b in batch]
    assert after == before


def test_the_layers_are_chosen_on_validation_and_score_users_out_of_sample():
    full, repeats, _, noise, types = _planted(seed=15)
    train_part, held_out = split_per_user(full + _planted(seed=15)[2], 0.3, seed=0)
    space = itemsearch.Space(ks=(10,), lambdas=(5.0,), weights=(1.0,), finer_weights=())
    search = ensemble.Search(space, rerank_users=10_000)
    measure = _measure(train_part, held_out)
    layers = ensemble.choose(lambda rows: noise[rows].copy(), train_part, repeats, held_out,
                             types, measure, measure, search, threads=1)
    # The blend on noise is chosen; the re-ranker is tried on top of it
    assert layers.blend.weight == 1.0
    assert set(layers.rerank.precision) == {"blend", "reranked"}
    # The validation scorer is the cross-fitted one when kept, the blend otherwise
    value = _measure(train_part, held_out)(layers.validation_scorer(lambda r: noise[r].copy()))
    expected = (layers.rerank.precision["reranked"] if layers.rerank.ranker is not None
                else layers.rerank.precision["blend"])
    assert value == pytest.approx(expected)


def test_a_user_without_history_keeps_the_lightfm_order_under_the_ranker():
    history = _history(5, 16, 0.3, seed=16).tolil()
    history[2, :] = 0  # user 2 has no history
    history = sp.csr_matrix(history)
    history.eliminate_zeros()
    sig = _signals(history, np.arange(16) % 2)
    lightfm = np.random.default_rng(17).normal(size=(5, 16)).astype(np.float32)
    b = rf.batch(lightfm.copy(), history, history, sig, n=4)
    scores = rerank.ranked(b, np.random.default_rng(18).random(b.columns.size))
    assert np.argsort(scores[2]).tolist() == np.argsort(lightfm[2]).tolist()
    assert np.argsort(scores[0]).tolist() != np.argsort(lightfm[0]).tolist()


def test_reorder_sorts_the_movable_candidates_into_their_slots_and_keeps_the_others():
    predicted = np.array([[0.2, 0.9, 0.5, 0.7, 0.1, 0.5]])
    movable = np.array([[True, False, True, True, False, True]])
    scores = rerank._reorder(predicted, movable)
    order = np.argsort(-scores[0], kind="stable").tolist()
    # movable slots 0, 2, 3, 5 take the movable items best first (3: 0.7, then 2 and 5 tied
    # at 0.5 in the blend's order, then 0: 0.2); slots 1 and 4 keep items 1 and 4
    assert order == [3, 1, 2, 5, 4, 0]
    assert np.all(np.diff(scores[0][order]) < 0)


def test_items_nobody_used_keep_the_place_the_blend_gave_them():
    history = _history(6, 20, 0.25, seed=19).tolil()
    history[:, [3, 7, 11]] = 0  # three items nobody used
    history = sp.csr_matrix(history)
    history.eliminate_zeros()
    sig = _signals(history, np.zeros(20, int))
    lightfm = np.random.default_rng(20).normal(size=(6, 20)).astype(np.float32)
    b = rf.batch(lightfm, history, history, sig, n=20)
    scores = rerank.ranked(b, np.random.default_rng(21).random(b.columns.size))
    for row in np.flatnonzero(b.warm):
        by_blend = [i for i in np.argsort(-b.blend[row], kind="stable")
                    if np.isfinite(b.blend[row, i])]
        by_ranker = [i for i in np.argsort(-scores[row], kind="stable")
                     if np.isfinite(scores[row, i])]
        for item in (3, 7, 11):
            assert by_ranker.index(item) == by_blend.index(item)
