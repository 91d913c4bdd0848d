"""Ranking metrics on held-out interactions: precision@k, recall@k, NDCG@k, AUC and coverage.

Any model plugs in as ``score(rows) -> scores`` (users x all items), so LightFM and baselines are
measured by the same code. Items a user has in the training part are never counted as hits or as
negatives: they are excluded from the ranking, as they are from the published lists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp

ScoreFn = Callable[[np.ndarray], np.ndarray]


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of each row's ``k`` best scores, best first."""
    n = scores.shape[1]
    k = min(k, n)
    if k == 0:
        empty = np.empty((scores.shape[0], 0))
        return empty.astype(np.int64), empty.astype(scores.dtype)
    if k < n:
        # Partitioning at n - k selects the k largest without a negated copy of the scores.
        part = np.argpartition(scores, n - k, axis=1)[:, n - k:]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    values = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(values, order, axis=1)


def mask_rows(scores: np.ndarray, matrix: sp.csr_matrix, start: int) -> None:
    """Set ``scores[i, j] = -inf`` where ``matrix[start + i, j]`` is stored."""
    block = matrix[start:start + scores.shape[0]]
    rows = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr))
    scores[rows, block.indices] = -np.inf


def split_per_user(matrix: sp.csr_matrix, fraction: float,
                   seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Hold out ``fraction`` of each user's items (at least one item stays for training)."""
    coo = matrix.tocoo()
    test = holdout_mask(coo.row, np.random.default_rng(seed).random(coo.nnz), fraction)

    def part(idx: np.ndarray) -> sp.csr_matrix:
        return sp.csr_matrix((coo.data[idx], (coo.row[idx], coo.col[idx])), shape=matrix.shape)

    return part(np.flatnonzero(~test)), part(np.flatnonzero(test))


def holdout_mask(users: np.ndarray, order: np.ndarray, fraction: float) -> np.ndarray:
    """True for the last ``floor(n * fraction)`` rows of each user by ``order``.

    With a random ``order`` this is a random split per user; with timestamps it holds out each
    user's most recent history. Users with one row keep it: a user who is only in the test part
    would measure cold start, which is evaluated separately.
    """
    users = np.asarray(users)
    n = len(users)
    if n == 0:
        return np.zeros(0, bool)
    by_user = np.lexsort((-np.asarray(order, dtype=np.float64), users))
    sorted_users = users[by_user]
    counts = np.bincount(sorted_users)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    position = np.arange(n) - starts[sorted_users]  # 0 = last by order
    n_test = np.floor(counts * fraction).astype(np.int64)
    chosen = (position < n_test[sorted_users]) & (counts[sorted_users] >= 2)
    mask = np.zeros(n, bool)
    mask[by_user[chosen]] = True
    return mask


def ranking_report(score: ScoreFn, train: sp.csr_matrix, test: sp.csr_matrix,
                   ks: Sequence[int] = (10,), candidates: np.ndarray | None = None,
                   users: np.ndarray | None = None, max_users: int | None = None,
                   seed: int = 0, with_auc: bool = True, batch: int = 1024) -> dict:
    """Metrics at every k in ``ks`` plus the curves for k = 1..max(ks).

    ``candidates`` (bool per item) limits the ranking to some items, e.g. one item type as in the
    published per-type lists; held-out items outside it are ignored. ``users`` limits the users;
    only users with a held-out candidate item are measured. Coverage is the share of candidate
    items that appear in at least one measured user's top k.
    """
    n_items = test.shape[1]
    candidates = np.ones(n_items, bool) if candidates is None else np.asarray(candidates, bool)
    test = sp.csr_matrix(test @ sp.diags(candidates.astype(np.float32)))
    test.eliminate_zeros()
    measured = _measured_users(test, users, max_users, seed)
    top = max(ks)
    if len(measured) == 0:
        return _empty(ks, top)
    hits_parts, held_parts, auc_parts = [], [], []
    shown = {k: np.zeros(n_items, bool) for k in ks}
    excluded = ~candidates
    train_rows, test_rows = train[measured], test[measured]
    for start in range(0, len(measured), batch):
        scores = np.array(score(measured[start:start + batch]), dtype=np.float32, copy=True)
        mask_rows(scores, train_rows, start)
        scores[:, excluded] = -np.inf
        idx, values = top_k(scores, top)
        held = test_rows[start:start + len(scores)]
        hits = np.asarray(held[np.arange(len(scores))[:, None], idx].todense()) > 0
        hits_parts.append(np.pad(hits, ((0, 0), (0, top - hits.shape[1]))))
        held_parts.append(np.diff(held.indptr))
        for k, seen in shown.items():
            seen[idx[:, :k][np.isfinite(values[:, :k])]] = True
        if with_auc:
            auc_parts.append(_auc(scores, held))
    precision, recall, ndcg = _mean_curves(np.concatenate(hits_parts),
                                           np.concatenate(held_parts), top)
    report = {"users": int(len(measured)), "candidates": int(candidates.sum()),
              "auc": float(np.concatenate(auc_parts).mean()) if auc_parts else float("nan"),
              "curve": {"precision": precision.tolist(), "recall": recall.tolist()}}
    report["at"] = {k: {"precision": float(precision[k - 1]), "recall": float(recall[k - 1]),
                        "ndcg": float(ndcg[k - 1]),
                        "coverage": float(shown[k].sum() / max(candidates.sum(), 1))}
                    for k in ks}
    return report


def _measured_users(test: sp.csr_matrix, users: np.ndarray | None, max_users: int | None,
                    seed: int) -> np.ndarray:
    """Users with a held-out item, among ``users`` if given, a sample of ``max_users`` if more."""
    measured = np.flatnonzero(np.diff(test.indptr) > 0)
    if users is not None:
        measured = np.intersect1d(measured, users)
    if max_users is not None and len(measured) > max_users:
        measured = np.sort(np.random.default_rng(seed).choice(measured, max_users, replace=False))
    return measured


def _mean_curves(hits: np.ndarray, n_held: np.ndarray,
                 top: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean precision, recall and NDCG at k = 1..top, from each user's hits in rank order and
    number of held-out items."""
    discounts = 1.0 / np.log2(np.arange(2, top + 2))
    cumulative = np.cumsum(hits, axis=1)
    dcg = np.cumsum(hits * discounts, axis=1)
    ideal = np.cumsum(discounts)[np.minimum(n_held[:, None], np.arange(1, top + 1)) - 1]
    return ((cumulative / np.arange(1, top + 1)).mean(axis=0),
            (cumulative / n_held[:, None]).mean(axis=0), (dcg / ideal).mean(axis=0))


def _empty(ks: Sequence[int], top: int) -> dict:
    zero = {"precision": 0.0, "recall": 0.0, "ndcg": 0.0, "coverage": 0.0}
    return {"users": 0, "candidates": 0, "auc": float("nan"),
            "curve": {"precision": [0.0] * top, "recall": [0.0] * top},
            "at": {k: dict(zero) for k in ks}}


def ranking_metrics(score: ScoreFn, train: sp.csr_matrix, test: sp.csr_matrix, k: int = 10,
                    max_users: int | None = None, seed: int = 0, with_auc: bool = True,
                    batch: int = 1024) -> dict[str, float]:
    """Mean metrics at one k over users that have held-out items (a sample of ``max_users``)."""
    report = ranking_report(score, train, test, (k,), max_users=max_users, seed=seed,
                            with_auc=with_auc, batch=batch)
    at = report["at"][k]
    return {"precision": at["precision"], "recall": at["recall"], "ndcg": at["ndcg"],
            "auc": report["auc"], "users": report["users"]}


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
