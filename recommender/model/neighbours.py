"""Each item's nearest items by co-occurrence, and EASE^R fitted on them alone.

Why sparse: EASE^R (Steck 2019) inverts an items x items matrix, so its memory grows with the
square of the catalogue and its time with the cube. Its zero-diagonal closed form is the same as
one ridge regression per item on all the others; restricting each regression to the item's
``k`` nearest items by co-occurrence cosine keeps ``k`` weights per item and costs one ``k x k``
solve per item, so the layer grows with items x k. On OULAD and demo data this restriction
ranks as well as the full inverse (docs/quality.md, "Sparse item-item").

The Gram matrix (co-occurrence counts) is sparse too: its size grows with the pairs of items
users share, so a user with more than ``HEAVY_USER`` items contributes a random sample of that
many (a handful of such users would otherwise dominate both its size and its counts).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from recommender.model.itemitem import ItemItem, binary

HEAVY_USER = 1000
GATHER_ENTRIES = 20_000_000  # Gram entries gathered per batch of items: about 240 MB
BLOCK_FLOATS = 8_000_000  # float64 k x k blocks per batch: 64 MB


def capped(history: sp.spmatrix, limit: int = HEAVY_USER, seed: int = 0) -> sp.csr_matrix:
    """The binary history with each user's items sampled down to ``limit`` (seeded)."""
    matrix = binary(history)
    counts = np.diff(matrix.indptr)
    heavy = np.flatnonzero(counts > limit)
    if not len(heavy):
        return matrix
    rng = np.random.default_rng(seed)
    keep = np.ones(matrix.nnz, bool)
    for user in heavy:
        start, stop = matrix.indptr[user], matrix.indptr[user + 1]
        dropped = rng.choice(stop - start, stop - start - limit, replace=False)
        keep[start + dropped] = False
    matrix.data[~keep] = 0.0
    matrix.eliminate_zeros()
    return matrix


def gram(history: sp.spmatrix, seed: int = 0) -> sp.csr_matrix:
    """Items x items co-occurrence counts (float32, exact below 2^24), diagonal included."""
    matrix = capped(history, seed=seed)
    product = (matrix.T.tocsr() @ matrix).tocsr()
    product.sort_indices()
    return product


def cosine_at(co: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The co-occurrence cosine of each (row, col) pair, float32."""
    norm = np.sqrt(np.maximum(co.diagonal().astype(np.float64), 1.0))
    counts = np.asarray(co[rows, cols], dtype=np.float64).ravel()
    return (counts / norm[rows] / norm[cols]).astype(np.float32)


@dataclass
class Neighbours:
    """Each item's nearest items, best first, from a Gram matrix."""

    gram: sp.csr_matrix  # items x items co-occurrence counts
    index: np.ndarray  # int32 items x k_max: the neighbours, -1 past the last one
    cosine: np.ndarray  # float32 items x k_max: their cosine, 0 past the last one

    @property
    def k_max(self) -> int:
        return self.index.shape[1]


def nearest(co: sp.csr_matrix, k_max: int, chunk: int = 4_000_000) -> Neighbours:
    """The ``k_max`` items of largest cosine per item (itself excluded, co-occurring only); ties
    go to the lower column, so a fit is reproducible. Rows are ranked ``chunk`` entries at a
    time, which bounds the memory beside the Gram matrix."""
    n = co.shape[0]
    k_max = max(1, min(k_max, n - 1))
    norm = np.sqrt(np.maximum(co.diagonal().astype(np.float64), 1.0))
    index = np.full((n, k_max), -1, np.int32)
    cosine = np.zeros((n, k_max), np.float32)
    first = 0
    while first < n:
        last = int(np.searchsorted(co.indptr, co.indptr[first] + chunk, "right")) - 1
        last = min(max(last, first + 1), n)
        _rank_rows(co, norm, first, last, index, cosine)
        first = last
    return Neighbours(co, index, cosine)


def _rank_rows(co: sp.csr_matrix, norm: np.ndarray, first: int, last: int, index: np.ndarray,
               cosine: np.ndarray) -> None:
    """Fill ``index`` and ``cosine`` for the rows ``first:last``."""
    lo, hi = co.indptr[first], co.indptr[last]
    counts = np.diff(co.indptr[first:last + 1])
    rows = np.repeat(np.arange(first, last), counts)
    cols = co.indices[lo:hi]
    cos = co.data[lo:hi] / norm[rows] / norm[cols]
    cos[(cols == rows) | (co.data[lo:hi] <= 0)] = -1.0  # never a neighbour of itself
    order = np.lexsort((cols, -cos, rows))
    # Sorted by row first, each row's entries keep the span its CSR row has.
    place = np.arange(hi - lo) - np.repeat(co.indptr[first:last] - lo, counts)
    keep = place < index.shape[1]
    taken, slot = order[keep], place[keep]
    good = cos[taken] > 0
    taken, slot = taken[good], slot[good]
    index[rows[taken], slot] = cols[taken]
    cosine[rows[taken], slot] = cos[taken]


Setting = tuple[int, float]  # (k, lambda)


def fit(neigh: Neighbours, settings: list[Setting], threads: int = 1) -> dict[Setting, ItemItem]:
    """EASE^R on each item's first ``k`` neighbours with regularisation ``lambda``, for every
    setting at once: the Gram blocks are gathered once for the largest ``k``, a smaller ``k``
    solving on the leading corner of the same block (neighbours are sorted best first).

    Small solves run one per thread with BLAS on one thread each: on this machine two BLAS
    threads made 200 x 200 solves 3.5x slower than one."""
    k_top = min(max(k for k, _ in settings), neigh.k_max)
    settings = [(min(k, k_top), lam) for k, lam in settings]

    def work(items: np.ndarray) -> list[np.ndarray]:
        blocks, targets = _gather(neigh, items, k_top)
        return [_solve(blocks, targets, k, lam) for k, lam in settings]

    with threadpool_limits(1, "blas"), ThreadPoolExecutor(max(1, threads)) as pool:
        parts = list(pool.map(work, _batches(neigh, k_top)))
    return {setting: _assemble(neigh, [p[i] for p in parts], setting[0])
            for i, setting in enumerate(settings)}


def _batches(neigh: Neighbours, k: int) -> list[np.ndarray]:
    """Consecutive items in batches bounded by the Gram entries they gather and their blocks."""
    degree = np.diff(neigh.gram.indptr)
    index = neigh.index[:, :k]
    cost = np.where(index >= 0, degree[np.maximum(index, 0)], 0).sum(axis=1)
    most = max(1, BLOCK_FLOATS // (k * k))
    batches, start, n = [], 0, len(index)
    while start < n:
        reach = np.searchsorted(np.cumsum(cost[start:]), GATHER_ENTRIES, "right")
        stop = min(n, start + max(1, min(int(reach), most)))
        batches.append(np.arange(start, stop))
        start = stop
    return batches


def _gather(neigh: Neighbours, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per item: its neighbours' Gram block (k x k) and their counts with the item (k), float64;
    a missing neighbour gets 1 on the diagonal and 0 elsewhere, so its weight solves to 0."""
    n, m = neigh.gram.shape[0], len(items)
    index = neigh.index[items, :k].astype(np.int64)
    valid = index >= 0
    owner, place = np.nonzero(valid)
    rows = neigh.gram[index[valid]]
    counts = np.diff(rows.indptr)
    owner, place = np.repeat(owner, counts), np.repeat(place, counts)
    cols, values = rows.indices.astype(np.int64), rows.data.astype(np.float64)
    # Where each gathered column sits among the owner's neighbours: one sorted key per pair.
    padded = np.where(valid, index, n)
    sorter = np.argsort(padded, axis=1, kind="stable")
    keys = (np.arange(m)[:, None] * (n + 1) + np.take_along_axis(padded, sorter, 1)).ravel()
    query = owner * (n + 1) + cols
    at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    hit = keys[at] == query
    blocks = np.zeros((m, k, k))
    blocks[owner[hit], place[hit], sorter.ravel()[at[hit]]] = values[hit]
    targets = np.zeros((m, k))
    own = cols == items[owner]
    targets[owner[own], place[own]] = values[own]
    gap_owner, gap_place = np.nonzero(~valid)
    blocks[gap_owner, gap_place, gap_place] = 1.0
    return blocks, targets


def _solve(blocks: np.ndarray, targets: np.ndarray, k: int, lam: float) -> np.ndarray:
    """Ridge weights of the leading ``k`` neighbours, float32 items x k."""
    system = blocks[:, :k, :k] + lam * np.eye(k)
    return np.linalg.solve(system, targets[:, :k, None])[..., 0].astype(np.float32)


def _assemble(neigh: Neighbours, parts: list[np.ndarray], k: int) -> ItemItem:
    """The weights of every item (``parts`` in item order) as sparse matrices: column ``j``
    holds item j's neighbours, so ``history @ weights`` scores by them."""
    index = neigh.index[:, :k]
    valid = index >= 0
    columns = np.repeat(np.arange(len(index)), valid.sum(axis=1))
    return ItemItem.from_pairs(index[valid], columns, np.concatenate(parts)[valid],
                               neigh.cosine[:, :k][valid], len(index))
