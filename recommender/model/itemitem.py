"""The item-item half of the production model: EASE^R (Steck 2019) beside LightFM.

Why a second model: LightFM's 64 dimensions cannot hold all of a catalogue's co-occurrence, and
on OULAD a full-rank item-item model (EASE^R) ranks warm users' unseen items better than any
LightFM setting tried (docs/quality.md). LightFM, in turn, knows the features, so it alone can
score users and items without interactions, find similar items and fold new users in.

Published lists of users with a history blend the two: for each user both scores are
standardised over the items the user has not used (mean 0, deviation 1), then summed with
``weight`` on the item-item part. A user without history has an item-item score of 0 everywhere,
so LightFM alone ranks for them; an item nobody used has an all-zero column, so among such items
LightFM alone decides. recommender.model.itemsearch chooses the part on the validation split.

The weights are sparse (``ItemItem``): each item keeps its nearest items only
(recommender.model.neighbours), so there is no catalogue ceiling. The dense closed form stays
for small catalogues, where it is one more candidate, and for the offline baseline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)


@dataclass
class ItemItem:
    """The item-item part: ``weights[h, c]`` is what history item h adds to candidate c's
    score (``history @ weights``); ``cosine`` is the two items' co-occurrence cosine, stored
    for exactly the same pairs (the re-ranker's signals). Both float32 CSR, items x items."""

    weights: sp.csr_matrix
    cosine: sp.csr_matrix

    @classmethod
    def from_pairs(cls, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray,
                   cosine: np.ndarray, n: int) -> ItemItem:
        """From the stored pairs (no duplicates), in any order: one pattern for both."""
        order = np.lexsort((cols, rows))
        indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=n))].astype(np.int64)
        pattern = (np.asarray(cols)[order].astype(np.int32), indptr)
        return cls(sp.csr_matrix((np.asarray(weights, np.float32)[order], *pattern), (n, n)),
                   sp.csr_matrix((np.asarray(cosine, np.float32)[order], *pattern), (n, n)))

    @classmethod
    def dense(cls, weights: np.ndarray, co: np.ndarray) -> ItemItem:
        """The closed form's full matrix, every pair but the diagonal stored."""
        norm = np.sqrt(np.maximum(np.diag(co), 1.0))
        rows, cols = np.nonzero(~np.eye(len(weights), dtype=bool))
        cosine = co[rows, cols] / norm[rows] / norm[cols]
        return cls.from_pairs(rows, cols, weights[rows, cols], cosine, len(weights))

    def permuted(self, perm: np.ndarray) -> ItemItem:
        """Rows and columns reordered: entry (i, j) becomes that of (perm[i], perm[j])."""
        n = self.weights.shape[0]
        new = np.empty(n, np.int64)
        new[perm] = np.arange(n)
        rows = np.repeat(np.arange(n), np.diff(self.weights.indptr))
        return ItemItem.from_pairs(new[rows], new[self.weights.indices], self.weights.data,
                                   self.cosine.data, n)


def binary(history: sp.spmatrix) -> sp.csr_matrix:
    """Users x items, 1.0 per stored pair, float32."""
    matrix = sp.csr_matrix(history, dtype=np.float32, copy=True)
    matrix.data[:] = 1.0
    return matrix


def gram(history: sp.spmatrix) -> np.ndarray:
    """Items x items co-occurrence counts of a binary history, float64 for the inversion."""
    matrix = binary(history)
    return (matrix.T @ matrix).toarray().astype(np.float64)


def ease_weights(gram_matrix: np.ndarray, lam: float) -> np.ndarray:
    """EASE^R's closed form: B = I - P / diag(P) with P = (G + lambda I)^-1, so diag(B) = 0."""
    inverse = np.linalg.inv(gram_matrix + lam * np.eye(len(gram_matrix)))
    weights = inverse / -np.diag(inverse)
    np.fill_diagonal(weights, 0.0)
    return weights.astype(np.float32)


def standardise(scores: np.ndarray, seen: sp.csr_matrix) -> None:
    """In place, per row: mean 0 and deviation 1 over the entries ``seen`` does not store.

    Items a user already has are left out of the statistics because they are never ranked; a
    row with no spread (a user without history, for the item-item part) becomes all zeros.
    """
    n_rows, n_cols = scores.shape
    counts = np.diff(seen.indptr)
    rows = np.repeat(np.arange(n_rows), counts)
    picked = scores[rows, seen.indices].astype(np.float64)
    unseen = np.maximum(n_cols - counts, 1)
    mean = (scores.sum(axis=1, dtype=np.float64) - np.bincount(rows, picked, n_rows)) / unseen
    scores -= mean[:, None].astype(scores.dtype)
    # Squares of the centred scores: no cancellation, so the batch's own precision will do
    # (a float64 copy of every batch would cost more than the rest of this function).
    centred = picked - mean[rows]
    squares = (np.einsum("ij,ij->i", scores, scores).astype(np.float64)
               - np.bincount(rows, centred * centred, n_rows))
    spread = np.sqrt(np.maximum(squares / unseen, 0.0))
    spread[spread < 1e-9] = np.inf  # (x - mean) / inf = 0: no information, no influence
    scores *= (1.0 / spread)[:, None].astype(scores.dtype)


def blend(scores: np.ndarray, history: sp.csr_matrix, part: ItemItem | None,
          weight: float) -> np.ndarray:
    """LightFM ``scores`` (rows x items) blended with the item-item scores of ``history`` (the
    same rows' binary interactions), in place: ``scores`` is overwritten and returned. Callers
    pass a batch they own (precompute's, or a scorer's fresh product). Without a blend it is
    returned untouched."""
    if part is None or weight == 0.0:
        return scores
    other = scored(history, part.weights, scores.dtype)
    standardise(scores, history)
    standardise(other, history)
    other *= weight
    scores += other
    return scores


def scored(history: sp.csr_matrix, matrix: sp.csr_matrix, dtype: type = np.float32) -> np.ndarray:
    """``history @ matrix`` as a dense rows x items array."""
    return np.ascontiguousarray((history @ matrix).toarray(), dtype=dtype)
