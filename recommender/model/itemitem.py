"""The item-item half of the production model: EASE^R (Steck 2019) beside LightFM.

Why a second model: LightFM's 64 dimensions cannot hold all of a catalogue's co-occurrence, and
on OULAD a full-rank item-item model (EASE^R) ranks warm users' unseen items better than any
LightFM setting tried (docs/quality.md). LightFM, in turn, knows the features, so it alone can
score users and items without interactions, find similar items and fold new users in.

Published lists of users with a history blend the two: for each user both scores are
standardised over the items the user has not used (mean 0, deviation 1), then summed with
``weight`` on the item-item part. A user without history has an item-item score of 0 everywhere,
so LightFM alone ranks for them; an item nobody used has an all-zero column, so among such items
LightFM alone decides. ``choose`` picks the regularisation and the weight on the validation split
train.fit already holds out; weight 0 (LightFM alone) is one of the candidates.

The weights are a dense items x items matrix, so catalogues above ``MAX_ITEMS`` do without them
(about 100 MB and seconds per inversion at 5,000 items; the cost grows with the cube).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recommender.outcome import Say, quiet

log = logging.getLogger(__name__)

ScoreFn = Callable[[np.ndarray], np.ndarray]  # rows -> users x items (recommender.model.ranking)

LAMBDAS = (12.5, 25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)
WEIGHTS = (0.25, 0.5, 1.0, 2.0, 4.0)
MAX_ITEMS = 5000


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


def blend(scores: np.ndarray, history: sp.csr_matrix, weights: np.ndarray | None,
          weight: float) -> np.ndarray:
    """LightFM ``scores`` (rows x items) blended with the item-item scores of ``history`` (the
    same rows' binary interactions), in place: ``scores`` is overwritten and returned. Callers
    pass a batch they own (precompute's, or a scorer's fresh product). Without a blend it is
    returned untouched."""
    if weights is None or weight == 0.0:
        return scores
    other = np.asarray(history @ weights, dtype=scores.dtype)
    standardise(scores, history)
    standardise(other, history)
    other *= weight
    scores += other
    return scores


@dataclass
class Choice:
    """What ``choose`` found on the validation split."""

    lam: float | None  # None: no item-item part (too many items, or none configured)
    weight: float  # 0.0: LightFM alone
    precision: dict[str, float] = field(default_factory=dict)  # "lambda/weight" -> P@10
    reason: str = ""
    validation_weights: np.ndarray | None = None  # EASE^R at ``lam`` on the training part


def choose(train_part: sp.csr_matrix, lightfm: ScoreFn, measure: Callable[[ScoreFn], float],
           lambdas: Sequence[float] = LAMBDAS, weights: Sequence[float] = WEIGHTS,
           max_items: int = MAX_ITEMS, say: Say = quiet) -> Choice:
    """The (lambda, weight) pair whose blend has the best validation P@10 (``measure``); on a
    tie the smaller weight, so LightFM alone wins when the blend adds nothing.

    Lambda and weight are chosen together: the best lambda of a blend is smaller than that of
    EASE^R alone (on OULAD 100 against 200), as LightFM already smooths.
    """
    n_items = train_part.shape[1]
    if n_items > max_items or not lambdas:
        reason = (f"{n_items} items: above the item-item limit of {max_items}"
                  if lambdas else "no item-item part configured")
        return Choice(None, 0.0, reason=reason)
    say(f"item-item layer: choose its regularisation ({len(lambdas)}) and weight "
        f"({len(weights)}) on the validation split", False)
    history = binary(train_part)
    co = gram(history)
    alone = measure(lightfm)
    precision = {"-/0": alone}
    best = Choice(None, 0.0, precision)
    top = alone
    for number, lam in enumerate(sorted(lambdas), 1):
        say(f"item-item layer: regularisation {lam:g} ({number} of {len(lambdas)})", True)
        matrix = ease_weights(co, lam)
        for weight in sorted(w for w in weights if w > 0):
            value = measure(lambda rows, m=matrix, w=weight:
                            blend(lightfm(rows), history[rows], m, w))
            precision[f"{lam:g}/{weight:g}"] = value
            if value > top:
                top = value
                best = Choice(lam, weight, precision, validation_weights=matrix)
    log.debug("item-item blend, validation P@10 per lambda/weight: %s", precision)
    return best
