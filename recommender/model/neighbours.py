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
DENSE_LOOKUP = 10_000  # items up to which the Gram matrix is also kept dense: 400 MB at most
BLOCK_FLOATS = 4_000_000  # k x k block entries per batch of items: 32 MB of float64


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

    def __post_init__(self) -> None:
        n = self.gram.shape[0]
        # A dense copy makes each lookup one memory read; past DENSE_LOOKUP items the entries
        # are found by binary search among the sorted (row, column) keys of the sparse matrix.
        # Item n stands for a missing neighbour: its row and column are 0.
        self._dense = None
        if n <= DENSE_LOOKUP:
            self._dense = np.zeros((n + 1, n + 1), np.float32)
            self._dense[:n, :n] = self.gram.toarray()
        else:
            rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.gram.indptr))
            self._keys = rows * (n + 1) + self.gram.indices

    @property
    def k_max(self) -> int:
        return self.index.shape[1]

    def lookup(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Gram entries at broadcast ``rows`` and ``cols``, float32: 0 where not stored and
        for item n (no item)."""
        if self._dense is not None:
            return self._dense[rows, cols]
        rows, cols = np.broadcast_arrays(rows, cols)
        query = rows * (self.gram.shape[0] + 1) + cols
        at = np.minimum(np.searchsorted(self._keys, query), len(self._keys) - 1)
        found = self._keys[at] == query
        return np.where(found, self.gram.data[at], 0.0).astype(np.float32)


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
    """Consecutive items in batches whose k x k blocks hold ``BLOCK_FLOATS`` entries."""
    n, most = neigh.gram.shape[0], max(1, BLOCK_FLOATS // (k * k))
    return [np.arange(start, min(start + most, n)) for start in range(0, n, most)]


def _gather(neigh: Neighbours, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per item: its neighbours' Gram block (k x k) and their counts with the item (k), float32;
    a missing neighbour gets 1 on the diagonal and 0 elsewhere, so its weight solves to 0."""
    index = neigh.index[items, :k].astype(np.int64)
    missing = index < 0
    index[missing] = neigh.gram.shape[0]
    blocks = neigh.lookup(index[:, :, None], index[:, None, :])
    targets = neigh.lookup(index, items[:, None])
    gap_owner, gap_place = np.nonzero(missing)
    blocks[gap_owner, gap_place, gap_place] = 1.0
    return blocks, targets


def _solve(blocks: np.ndarray, targets: np.ndarray, k: int, lam: float) -> np.ndarray:
    """Ridge weights of the leading ``k`` neighbours, float32 items x k (solved in float64)."""
    system = blocks[:, :k, :k].astype(np.float64)
    diagonal = np.arange(k)
    system[:, diagonal, diagonal] += lam
    rhs = targets[:, :k, None].astype(np.float64)
    return np.linalg.solve(system, rhs)[..., 0].astype(np.float32)


def _assemble(neigh: Neighbours, parts: list[np.ndarray], k: int) -> ItemItem:
    """The weights of every item (``parts`` in item order) as sparse matrices: column ``j``
    holds item j's neighbours, so ``history @ weights`` scores by them."""
    index = neigh.index[:, :k]
    valid = index >= 0
    columns = np.repeat(np.arange(len(index)), valid.sum(axis=1))
    return ItemItem.from_pairs(index[valid], columns, np.concatenate(parts)[valid],
                               neigh.cosine[:, :k][valid], len(index))
