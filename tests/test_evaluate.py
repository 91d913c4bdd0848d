"""Metrics against hand-computed cases, leak-free splits, baselines against their definitions."""

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.model import itemitem, ranking
from recommender.offline import baselines, contenders, evalreport, evaluate, splits
from runtime.items import ITEM_TYPES
from tests.factories import make_export

SCORES = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]], np.float32)
TRAIN = sp.csr_matrix(np.array([[0, 1, 0, 0, 0]], np.float32))  # item 1 seen in training
TEST = sp.csr_matrix(np.array([[1, 0, 0, 1, 0]], np.float32))  # items 0 and 3 held out


def _fixed(scores: np.ndarray):
    return lambda rows: scores[rows]


def test_metrics_equal_a_hand_computed_ranking():
    # Ranking without the training item: 0 (hit), 2, 3 (hit), 4.
    report = ranking.ranking_report(_fixed(SCORES), TRAIN, TEST, ks=(2, 3))
    at2, at3 = report["at"][2], report["at"][3]
    assert at2["precision"] == pytest.approx(0.5)
    assert at2["recall"] == pytest.approx(0.5)
    assert at2["ndcg"] == pytest.approx(1 / (1 + 1 / math.log2(3)))
    assert at3["precision"] == pytest.approx(2 / 3)
    assert at3["recall"] == pytest.approx(1.0)
    assert at3["ndcg"] == pytest.approx((1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3)))
    # Pairs (positive, negative): (0,2) (0,4) (3,4) right, (3,2) wrong; item 1 is not a negative.
    assert report["auc"] == pytest.approx(0.75)
    assert at2["coverage"] == pytest.approx(2 / 5)
    assert report["curve"]["precision"] == pytest.approx([1.0, 0.5, 2 / 3])


def test_candidates_limit_the_ranking_and_the_held_out_items():
    candidates = np.array([True, True, True, False, True])
    report = ranking.ranking_report(_fixed(SCORES), TRAIN, TEST, ks=(2,), candidates=candidates)
    # Item 3 is not a candidate: ranking 0 (hit), 2, 4 and one held-out item left.
    assert report["at"][2]["precision"] == pytest.approx(0.5)
    assert report["at"][2]["recall"] == pytest.approx(1.0)
    assert report["at"][2]["coverage"] == pytest.approx(2 / 4)


def test_metrics_average_over_users_with_held_out_items_only():
    scores = np.array([[0.9, 0.1, 0.5], [0.1, 0.9, 0.5], [0.3, 0.2, 0.1]], np.float32)
    train = sp.csr_matrix((3, 3), dtype=np.float32)
    test = sp.csr_matrix(np.array([[1, 0, 0], [1, 0, 0], [0, 0, 0]], np.float32))
    got = ranking.ranking_metrics(_fixed(scores), train, test, k=1)
    assert got["users"] == 2
    assert got["precision"] == pytest.approx(0.5)  # user 0 hits at rank 1, user 1 misses
    assert got["auc"] == pytest.approx((1.0 + 0.0) / 2)


def test_holdout_mask_takes_the_last_fifth_of_each_user_by_order():
    users = np.array([0] * 10 + [1] * 4 + [2])
    order = np.r_[np.arange(10), np.arange(4), 0]
    mask = ranking.holdout_mask(users, order, 0.2)
    assert mask[:10].tolist() == [False] * 8 + [True, True]
    assert not mask[10:].any()  # floor(4 * 0.2) = 0; a single pair always stays


@pytest.mark.parametrize("protocol", ["random", "time"])
def test_split_never_leaks_held_out_pairs_into_training(protocol):
    data = make_export(n_users=120, n_items=40, seed=3)
    inter = data.interactions
    inter.timestamps[:] = np.random.default_rng(0).integers(0, 1000, len(inter))
    part = splits.split(data, protocol, 0.2, seed=1)
    train = part.train_matrix()
    assert train.multiply(part.test).nnz == 0
    assert train.nnz + part.test.nnz == len(inter)
    assert part.train.interactions.users.size == train.nnz
    # Every user with a held-out pair keeps some training pairs.
    held_users = np.flatnonzero(np.diff(part.test.indptr))
    assert (np.diff(train.indptr)[held_users] > 0).all()
    if protocol == "time":
        stamp = sp.csr_matrix((inter.timestamps.astype(float) + 1, (inter.users, inter.items)),
                              shape=train.shape)
        for user in held_users:
            row = stamp[user]
            held = part.test[user].indices
            kept = np.setdiff1d(row.indices, held)
            assert row[0, held].toarray().min() >= row[0, kept].toarray().max()


def test_cold_split_removes_every_interaction_of_cold_users_and_items():
    data = make_export(n_users=100, n_items=40, seed=4)
    part = splits.cold_split(data, 0.1, seed=2)
    train = part.train_matrix()
    assert len(part.cold_users) == 10 and part.cold_items.sum() == 4
    assert train[part.cold_users].nnz == 0
    assert train[:, np.flatnonzero(part.cold_items)].nnz == 0
    assert train.nnz + part.test.nnz == len(data.interactions)


def test_ease_weights_are_ridge_regressions_of_each_item_on_the_others():
    rng = np.random.default_rng(0)
    x = (rng.random((30, 6)) < 0.4).astype(np.float64)
    lam = 2.0
    weights = itemitem.ease_weights(x.T @ x, lam)
    for j in range(6):
        others = [i for i in range(6) if i != j]
        a = x[:, others]
        ridge = np.linalg.solve(a.T @ a + lam * np.eye(5), a.T @ x[:, j])
        assert weights[others, j] == pytest.approx(ridge, abs=1e-5)
        assert weights[j, j] == 0


def test_item_knn_scores_are_sums_of_cosine_similarities_to_the_history():
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [1, 1, 0]], np.float32))
    score = baselines.item_knn(x)(np.array([1]))[0]
    # cos(0,1) = 2/sqrt(3*2), cos(0,2) = 1/sqrt(3*1), cos(1,2) = 0; user 1 has items 0 and 2.
    assert score[1] == pytest.approx(2 / math.sqrt(6), abs=1e-5)
    assert score[0] == pytest.approx(1 / math.sqrt(3), abs=1e-5)


def test_popularity_and_tuned_ease_on_clustered_data():
    data = make_export(n_users=200, n_items=60, seed=1)
    part = splits.split(data, "random", 0.2, seed=0)
    train = part.train_matrix()
    lam, grid = baselines.tune_ease(train, seed=0)
    assert lam in grid and grid[lam] == max(grid.values())
    pop = ranking.ranking_metrics(baselines.popularity(train), train, part.test)
    ease = ranking.ranking_metrics(baselines.ease(train, lam), train, part.test)
    assert ease["precision"] > pop["precision"]


def test_tuned_ease_on_neighbours_picks_its_best_validated_setting_and_beats_popularity():
    data = make_export(n_users=200, n_items=60, seed=1)
    part = splits.split(data, "random", 0.2, seed=0)
    train = part.train_matrix()
    (k, lam), grid = baselines.tune_sparse_ease(train, seed=0)
    assert grid[f"{k}/{lam:g}"] == max(grid.values()) and k <= 58
    pop = ranking.ranking_metrics(baselines.popularity(train), train, part.test)
    near = ranking.ranking_metrics(baselines.sparse_ease(train, k, lam), train, part.test)
    assert near["precision"] > pop["precision"]


def test_run_writes_markdown_json_and_png(tmp_path):
    from recommender.model.params import TrainParams

    data = make_export(n_users=150, n_items=40, seed=2)
    params = TrainParams(components=8, max_epochs=4, patience=2)
    result = evaluate.run(data, ks=(5, 10), modes=("partial",), threads=1, original_rounds=2,
                          cold_fraction=0.1, params=params)
    names = [row["name"] for row in result["models"]]
    assert names == ["popularity", "item-kNN", "EASE^R", "EASE^R on neighbours",
                     "original partial", "LightFM partial (production)",
                     "LightFM partial alone (production fit, no layers)"]
    assert result["models"][4]["fits"] == 3  # two search rounds and the refit
    paths = evalreport.write(result, tmp_path, "python -m recommender evaluate ...")
    assert [p.suffix for p in paths] == [".md", ".json", ".png"]
    text = paths[0].read_text()
    assert "| LightFM partial (production) |" in text and "cold users P@10" in text
    saved = json.loads(paths[1].read_text())
    assert saved["best_baseline"] in names
    assert paths[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cold_items_are_also_measured_within_each_type_as_the_lists_show_them():
    data = make_export(n_users=150, n_items=40, seed=2)
    part = splits.cold_split(data, 0.2, seed=1)
    types = data.items.types
    # Given a model that ranks every type's cold items perfectly but the types in the wrong
    # order against each other (each type's scores sit in its own band)
    truth = part.test.toarray()
    band = (len(ITEM_TYPES) - types).astype(np.float32) * 10.0
    scores = (band[None, :] + 0.5 * truth).astype(np.float32)
    model = contenders.Fitted("banded", "model", lambda rows: scores[rows], 0.0)
    result = evaluate.measure_cold(model, part)
    within = result["items_within_type"]
    # Then within a type it is perfect (no better ranking exists), overall it is not
    assert within["pairs"] > 0 and within["auc"] == pytest.approx(1.0)
    assert result["items"]["auc"] < within["auc"]
