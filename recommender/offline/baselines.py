"""Reference recommenders for the evaluation: popularity, item-kNN (cosine), EASE^R and
EASE^R on each item's nearest items (the production item-item part alone).

They only see the training interactions (users x items, 1 per pair) and return a score function
``rows -> users x items`` for recommender.model.ranking. None of them can place an item nobody has
interacted with; for users without history they all fall back to popularity (a tiny popularity
term breaks ties), which is what a deployed collaborative filter would do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from recommender.model import itemsearch
from recommender.model.itemitem import binary as _binary
from recommender.model.itemitem import ease_weights, gram
from recommender.model.ranking import ScoreFn, ranking_metrics, split_per_user

EASE_LAMBDAS = (1.0, 5.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 3000.0)
EASE_MAX_ITEMS = 12000  # dense inverses past this take 10+ minutes per lambda here
SPARSE_EASE_GRID = ((25, 50.0), (25, 200.0), (100, 100.0), (100, 400.0), (200, 200.0),
                    (200, 800.0))
KNN_NEIGHBOURS = 100
_TIE_BREAK = 1e-6


def item_popularity(train: sp.spmatrix) -> np.ndarray:
    """Share of users who interacted with each item, in [0, 1]."""
    matrix = _binary(train)
    return (np.diff(matrix.tocsc().indptr) / max(matrix.shape[0], 1)).astype(np.float32)


def popularity(train: sp.spmatrix) -> ScoreFn:
    """Everyone gets the most interacted-with items (per type when ranked per type)."""
    pop = item_popularity(train)
    return lambda rows: np.broadcast_to(pop, (len(rows), len(pop)))


def _with_history(train: sp.csr_matrix, weights: np.ndarray | sp.spmatrix) -> ScoreFn:
    """Scores ``history @ weights``, ties (and users without history) broken by popularity."""
    pop = item_popularity(train) * _TIE_BREAK

    def score(rows: np.ndarray) -> np.ndarray:
        scores = train[rows] @ weights
        scores = scores.toarray() if sp.issparse(scores) else np.asarray(scores)
        return scores.astype(np.float32) + pop

    return score


def item_knn(train: sp.spmatrix, neighbours: int = KNN_NEIGHBOURS) -> ScoreFn:
    """Item-based kNN: cosine similarity of item columns, ``neighbours`` kept per item."""
    matrix = _binary(train)
    norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=0)).ravel())
    norms[norms == 0] = 1.0
    unit = sp.csr_matrix(matrix @ sp.diags(1.0 / norms).astype(np.float32))
    similarity = (unit.T @ unit).tocsr()
    similarity.setdiag(0.0)
    similarity.eliminate_zeros()
    return _with_history(matrix, _keep_top(similarity, neighbours))


def _keep_top(similarity: sp.csr_matrix, neighbours: int) -> sp.csr_matrix:
    """Keep the ``neighbours`` largest entries of each column (an item's nearest items)."""
    csc = similarity.tocsc()
    rows, cols, vals = [], [], []
    for col in range(csc.shape[1]):
        lo, hi = csc.indptr[col], csc.indptr[col + 1]
        data, index = csc.data[lo:hi], csc.indices[lo:hi]
        if len(data) > neighbours:
            keep = np.argpartition(-data, neighbours - 1)[:neighbours]
            data, index = data[keep], index[keep]
        rows.append(index)
        cols.append(np.full(len(index), col))
        vals.append(data)
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=similarity.shape)


def ease(train: sp.spmatrix, lam: float) -> ScoreFn:
    matrix = _binary(train)
    return _with_history(matrix, ease_weights(gram(matrix), lam))


def tune_ease(train: sp.spmatrix, seed: int = 0,
              lambdas: Sequence[float] = EASE_LAMBDAS) -> tuple[float, dict[float, float]]:
    """The lambda with the best precision@10 on a per-user 20 % validation split of ``train``."""
    matrix = _binary(train)
    if matrix.shape[1] > EASE_MAX_ITEMS:
        raise ValueError(f"EASE^R needs a dense {matrix.shape[1]}^2 matrix; too many items")
    fit_part, held = split_per_user(matrix, 0.2, seed + 1)
    co = gram(fit_part)
    scores: dict[float, float] = {}
    for lam in lambdas:
        scored = _with_history(fit_part, ease_weights(co, lam))
        scores[lam] = ranking_metrics(scored, fit_part, held, k=10, max_users=5000, seed=seed,
                                      with_auc=False)["precision"]
    return max(scores, key=lambda lam: scores[lam]), scores


def sparse_ease(train: sp.spmatrix, k: int, lam: float, threads: int = 1) -> ScoreFn:
    matrix = _binary(train)
    part = itemsearch.fit_parts(matrix, [(k, lam)], threads)[(k, lam)]
    return _with_history(matrix, part.weights)


def tune_sparse_ease(train: sp.spmatrix, seed: int = 0, threads: int = 1,
                     grid: Sequence[tuple[int, float]] = SPARSE_EASE_GRID,
                     ) -> tuple[tuple[int, float], dict[str, float]]:
    """The (k, lambda) with the best precision@10 on the same validation split as
    ``tune_ease``; every setting is fitted from one Gram matrix."""
    matrix = _binary(train)
    fit_part, held = split_per_user(matrix, 0.2, seed + 1)
    most = matrix.shape[1] - 2
    grid = list(dict.fromkeys((min(k, most), lam) for k, lam in grid))
    parts = itemsearch.fit_parts(fit_part, grid, threads)
    scores = {setting: ranking_metrics(_with_history(fit_part, part.weights), fit_part, held,
                                       k=10, max_users=5000, seed=seed,
                                       with_auc=False)["precision"]
              for setting, part in parts.items()}
    best = max(scores, key=lambda setting: scores[setting])
    return best, {f"{k}/{lam:g}": value for (k, lam), value in scores.items()}
