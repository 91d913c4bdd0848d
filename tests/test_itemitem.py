"""The item-item part and its blend with LightFM: the closed form, the standardisation, the
choice on validation, and lists that rank exactly as the blended score says."""

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.model import itemitem, itemsearch
from recommender.publish import topk
from tests.test_topk import _random_embeddings, assert_lists_rank_by


def _history(n_users=40, n_items=30, density=0.15, seed=0) -> sp.csr_matrix:
    matrix = sp.random(n_users, n_items, density=density, random_state=seed, format="csr",
                       dtype=np.float32)
    matrix.data[:] = 1.0
    return matrix


def test_ease_weights_satisfy_the_closed_form_with_a_zero_diagonal():
    history = _history()
    co = itemitem.gram(history)
    lam = 3.0
    weights = itemitem.ease_weights(co, lam).astype(np.float64)
    assert np.all(np.diag(weights) == 0)
    # The optimality condition of min |X - XB|^2 + lam |B|^2 with diag(B) = 0: the gradient
    # (G + lam I) B - G vanishes everywhere but on the diagonal (the constraint's multipliers).
    residual = (co + lam * np.eye(len(co))) @ weights - co
    np.fill_diagonal(residual, 0.0)
    assert np.abs(residual).max() < 1e-3


def test_standardise_gives_mean_zero_and_deviation_one_over_the_unseen_items():
    rng = np.random.default_rng(1)
    scores = rng.normal(3.0, 2.0, size=(12, 25)).astype(np.float32)
    seen = _history(12, 25, 0.3, seed=2)
    expected = scores.astype(np.float64).copy()
    for row in range(12):
        unseen = np.setdiff1d(np.arange(25), seen[row].indices)
        mean, spread = expected[row, unseen].mean(), expected[row, unseen].std()
        expected[row] = (expected[row] - mean) / spread
    itemitem.standardise(scores, seen)
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)


def test_standardise_turns_a_row_without_spread_into_zeros():
    scores = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [1.0, 2.0, 3.0]], np.float32)
    itemitem.standardise(scores, sp.csr_matrix((3, 3), dtype=np.float32))
    assert np.all(scores[:2] == 0)
    assert scores[2].tolist() == pytest.approx([-1.2247, 0.0, 1.2247], abs=1e-4)


def test_a_user_without_history_keeps_the_lightfm_ranking_in_the_blend():
    rng = np.random.default_rng(3)
    lightfm = rng.normal(size=(2, 30)).astype(np.float32)
    history = _history(2, 30, 0.2, seed=4).tolil()
    history[1, :] = 0  # user 1 has no history
    history = sp.csr_matrix(history)
    history.eliminate_zeros()
    co = itemitem.gram(_history(50, 30, 0.2, seed=5))
    part = itemitem.ItemItem.dense(itemitem.ease_weights(co, 5.0), co)
    blended = itemitem.blend(lightfm.copy(), history, part, 2.0)
    assert np.argsort(blended[1]).tolist() == np.argsort(lightfm[1]).tolist()
    # A user with a history is ranked by both parts, so the order changes
    assert np.argsort(blended[0]).tolist() != np.argsort(lightfm[0]).tolist()


def test_blend_weight_zero_or_no_item_item_part_returns_the_lightfm_scores():
    lightfm = np.arange(6, dtype=np.float32).reshape(2, 3)
    history = sp.csr_matrix(np.eye(2, 3, dtype=np.float32))
    assert itemitem.blend(lightfm, history, None, 1.0) is lightfm
    part = itemitem.ItemItem.dense(np.ones((3, 3), np.float32), np.ones((3, 3)))
    assert itemitem.blend(lightfm, history, part, 0.0) is lightfm


def _clustered(n_users=120, n_items=40, seed=6) -> sp.csr_matrix:
    """Users pick items of their own cluster: co-occurrence says it all."""
    rng = np.random.default_rng(seed)
    clusters = rng.integers(0, 4, n_users)
    dense = (rng.random((n_users, n_items)) < 0.05).astype(np.float32)
    for u, c in enumerate(clusters):
        own = np.arange(c, n_items, 4)
        dense[u, rng.choice(own, 6, replace=False)] = 1.0
    return sp.csr_matrix(dense)


def _measure_on(train_part: sp.csr_matrix, held_out: sp.csr_matrix):
    from recommender.model.ranking import ranking_metrics

    def measure(score):
        return ranking_metrics(score, train_part, held_out, k=5, with_auc=False)["precision"]
    return measure


def _quick(train_part, held_out):
    measure = _measure_on(train_part, held_out)
    return measure, measure


def test_choose_blends_when_validation_shows_the_item_item_part_helps():
    from recommender.model.ranking import split_per_user

    train_part, held_out = split_per_user(_clustered(), 0.3, seed=0)
    noise = np.random.default_rng(7).normal(size=train_part.shape).astype(np.float32)
    # Given a LightFM part that knows nothing (noise) and a history that predicts well
    choice = itemsearch.choose(train_part, lambda rows: noise[rows],
                               *_quick(train_part, held_out))
    # Then the blend is chosen, with the best validation P@10 of the settings tried
    assert choice.used and choice.lam is not None and choice.k is not None
    chosen = choice.precision[itemsearch._key(choice.k, choice.lam, choice.weight)]
    assert chosen == max(choice.precision.values()) > choice.precision["-/0"]
    assert choice.validated > choice.precision["-/0"]
    assert choice.validation_part is not None


def test_choose_keeps_lightfm_alone_when_the_blend_does_not_help():
    from recommender.model.ranking import split_per_user

    train_part, held_out = split_per_user(_clustered(), 0.3, seed=0)
    truth = held_out.toarray() * 10.0
    # Given a LightFM part that already ranks the held-out items first (it cannot be beaten)
    choice = itemsearch.choose(train_part, lambda rows: truth[rows],
                               *_quick(train_part, held_out))
    assert (choice.k, choice.lam, choice.weight) == (None, None, 0.0)
    assert not choice.used and choice.validation_part is None


def test_choose_searches_coarse_to_fine_not_the_whole_grid():
    from recommender.model.ranking import split_per_user

    train_part, held_out = split_per_user(_clustered(n_items=60), 0.3, seed=0)
    noise = np.random.default_rng(7).normal(size=train_part.shape).astype(np.float32)
    space = itemsearch.Space(ks=(5, 10, 20, 40), dense_items=0)
    choice = itemsearch.choose(train_part, lambda rows: noise[rows],
                               *_quick(train_part, held_out), space=space)
    settings = {key.rsplit("/", 1)[0] for key in choice.precision if key != "-/0"}
    # 4 lambdas at the first k, 3 more k, 2 lambdas around the best: 9 of the 16 + 8 possible
    assert len(settings) == 9
    assert len(space.ks) * len(space.lambdas) > len(settings)


def test_no_lambdas_turn_the_item_item_part_off():
    space = itemsearch.Space(lambdas=())
    choice = itemsearch.choose(_history(10, 30), lambda rows: np.zeros((len(rows), 30)),
                               lambda score: 1.0, lambda score: 1.0, space=space)
    assert not choice.used and "no item-item part" in choice.reason


def test_candidate_ks_stay_below_the_catalogue_and_add_the_dense_form_when_small():
    space = itemsearch.Space()
    assert itemsearch.candidate_ks(30, space) == [25, 28, itemsearch.ALL]
    assert itemsearch.candidate_ks(10_000, space) == [25, 50, 100, 200]
    assert itemsearch.candidate_ks(50_000, space) == [25, 50, 100]


def test_user_lists_rank_by_the_blended_score_per_type_without_seen_items():
    emb = _random_embeddings(n_users=23, n_items=41)
    co = itemitem.gram(emb.positives)
    emb.item_item = itemitem.ItemItem.dense(itemitem.ease_weights(co, 4.0), co)
    emb.blend_weight = 1.5
    k = 4
    produced = dict(pair for batch in topk.user_lists(emb, k, batch=6) for pair in batch)
    lightfm = (emb.user_emb @ emb.item_emb.T + emb.item_bias).astype(np.float32)
    assert_lists_rank_by(emb, produced, itemitem.blend(lightfm, emb.positives, emb.item_item, 1.5),
                         k)
