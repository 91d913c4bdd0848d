"""Ranking metrics on held-out interactions: precision@k, recall@k, NDCG@k and AUC.

Any model plugs in as ``score(rows) -> scores`` (users x all items), so LightFM and baselines are
measured by the same code. Items a user has in the training part are never counted as hits or as
negatives: they are excluded from the ranking, as they are from the published lists.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from recommender.topk import mask_rows, top_k

ScoreFn = Callable[[np.ndarray], np.ndarray]


def split_per_user(matrix: sp.csr_matrix, fraction: float,
                   seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Hold out ``fraction`` of each user's items (at least one item stays for training)."""
    coo = matrix.tocoo()
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(coo.nnz), coo.row))
    rows = coo.row[order]
    counts = np.bincount(rows, minlength=matrix.shape[0])
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.arange(coo.nnz) - starts[rows]
    n_test = np.floor(counts * fraction).astype(np.int64)
    test = position[:] < n_test[rows]
    test &= counts[rows] >= 2
    chosen = order[test]
    kept = order[~test]

    def part(idx: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((coo.data[idx], (coo.row[idx], coo.col[idx])), shape=matrix.shape)

    return part(kept), part(chosen)


def ranking_metrics(score: ScoreFn, train: sp.csr_matrix, test: sp.csr_matrix, k: int = 10,
                    max_users: int | None = None, seed: int = 0, with_auc: bool = True,
                    batch: int = 1024) -> dict[str, float]:
    """Mean metrics over users that have held-out items (a sample of ``max_users`` of them)."""
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    if len(users) == 0:
        return {"precision": 0.0, "recall": 0.0, "ndcg": 0.0, "auc": 0.0, "users": 0}
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    precision, recall, ndcg, auc = [], [], [], []
    train_rows, test_rows = train[users], test[users]
    for start in range(0, len(users), batch):
        scores = np.array(score(users[start:start + batch]), dtype=np.float32, copy=True)
        mask_rows(scores, train_rows, start)
        idx, _ = top_k(scores, k)
        held = test_rows[start:start + len(scores)]
        hits = np.asarray(held[np.arange(len(scores))[:, None], idx].todense()) > 0
        n_held = np.diff(held.indptr)
        precision.append(hits.sum(axis=1) / k)
        recall.append(hits.sum(axis=1) / n_held)
        ideal = np.array([discounts[:min(n, k)].sum() for n in n_held])
        ndcg.append((hits * discounts[:hits.shape[1]]).sum(axis=1) / ideal)
        if with_auc:
            auc.append(_auc(scores, held))
    result = {"precision": float(np.concatenate(precision).mean()),
              "recall": float(np.concatenate(recall).mean()),
              "ndcg": float(np.concatenate(ndcg).mean()),
              "auc": float(np.concatenate(auc).mean()) if auc else float("nan"),
              "users": int(len(users))}
    return result


def _auc(scores: np.ndarray, held: sp.csr_matrix) -> np.ndarray:
    """Per row: share of (held-out item, other candidate item) pairs ranked the right way."""
    out = np.empty(len(scores))
    for row in range(len(scores)):
        candidates = scores[row][np.isfinite(scores[row])]
        positives = scores[row, held.indices[held.indptr[row]:held.indptr[row + 1]]]
        n_neg = len(candidates) - len(positives)
        if n_neg <= 0:
            out[row] = 1.0
            continue
        ordered = np.sort(candidates)
        below = np.searchsorted(ordered, positives, "left")
        ties = np.searchsorted(ordered, positives, "right") - below
        # Positives compared with the other positives cancel out: count them then remove.
        wins = below.sum() + 0.5 * (ties - 1).sum() - len(positives) * (len(positives) - 1) / 2
        out[row] = wins / (len(positives) * n_neg)
    return out
