"""The last step of warm users' lists: a gradient-boosted model reorders the blend's candidates.

Why: LightFM and EASE^R each give one linear score per item, and their blend (recommender.
itemitem) was level with EASE^R alone on OULAD. Signals neither can express still separate the
items a user goes on to use: how close a candidate is to the user's single nearest item rather
than to all of them on average, how many of the user's items are close to it, how often an item
is used on more than one day (rating 1), how long the user's history is, how much of it is of
the candidate's type. A LightGBM model over those signals and both parts' scores reorders, per
item type, the ``CANDIDATES`` best items of the blend (docs/quality.md, "The re-ranker").

It is trained where the blend is chosen: on train.fit's validation split, from the models fitted
on the training part, with the held-out pairs as labels. The users are split in two halves that
cross-fit (each half is scored by the model trained on the other), so its validation precision
is measured on users it did not learn from; it is kept only if that beats the blend. LightGBM's
own text format is saved in the tenant's .npz (no pickle). This is the only module that imports
LightGBM; the candidates and features are recommender.model.rerankfeatures'.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import lightgbm
import numpy as np
import scipy.sparse as sp

from recommender.model import itemitem
from recommender.model import rerankfeatures as rf
from recommender.model.rerankfeatures import Batch, Signals, batch
from recommender.outcome import Say, quiet

ScoreFn = Callable[[np.ndarray], np.ndarray]  # rows -> users x items (recommender.model.ranking)

TREES = 150
# Negatives kept per positive when the ranker learns: a user's candidates are about 99 %
# negatives, and LightGBM's time is linear in rows. A seeded sample at this ratio, weighted back
# (1 / rate) so the objective is the same in expectation, fitted 16x faster on the 5,000-item
# demo with the same held-out AUC (docs/quality.md, "The re-ranker").
NEGATIVES_PER_POSITIVE = 30
TIE_STEP = 1e-6  # per blend rank, subtracted from predictions: above float32's step near 1
BATCH_USERS = 512  # a batch holds a few users x items float arrays
# choose keeps its users' candidates and features to measure the cross-fitted pair on them
# without building them again; about 80 bytes per candidate, so 256 MB holds 5,000 users
# with 640 candidates each (13 item types). Users beyond it are built again.
CACHE_BYTES = 256 << 20
PARAMS = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 31,
          "min_data_in_leaf": 100, "feature_fraction": 0.8, "bagging_fraction": 0.8,
          "bagging_freq": 1, "deterministic": True, "force_row_wise": True, "verbose": -1}


def _reorder(predicted: np.ndarray, movable: np.ndarray) -> np.ndarray:
    """Scores of one type's candidates (rows x slots, slots in the blend's order): the
    ``movable`` ones are sorted by ``predicted`` into the slots movable ones occupy; each other
    keeps its slot, just under the item that lands in the slot above it."""
    n_rows, n_slots = predicted.shape
    slots = np.arange(n_slots)
    # Best first; equal predictions are common (trees predict in steps), the blend breaks ties.
    best_first = np.argsort(np.where(movable, -predicted, np.inf), axis=1, kind="stable")
    movable_slots = np.argsort(~movable, axis=1, kind="stable")  # their slots, in order
    value = np.take_along_axis(predicted, best_first, axis=1)  # the j-th best prediction
    scores = np.empty((n_rows, n_slots))
    np.put_along_axis(scores, best_first, value - TIE_STEP * movable_slots, axis=1)
    # An unmoved candidate: the value of the last movable slot above it, or above the best.
    nth = np.maximum(np.cumsum(movable, axis=1) - 1, 0)  # at a movable slot: its j
    last = np.maximum.accumulate(np.where(movable, slots, -1), axis=1)
    above = np.take_along_axis(np.take_along_axis(value, nth, axis=1), np.maximum(last, 0),
                               axis=1)
    top = np.where(movable.any(axis=1), value[:, 0], 1.0)[:, None]
    fixed = np.where(last >= 0, above, top) - TIE_STEP * slots
    return np.where(movable, scores, fixed)


def placed(b: Batch, predicted: np.ndarray) -> np.ndarray:
    """The candidates' final scores (users x candidates, the blend's type): per type, by
    ``predicted`` (in [0, 1]) except those of items nobody has used, which keep the place the
    blend gave them (the ranker knows nothing of them; LightFM's features do); seen items -inf.
    Users without history keep the blend's scores, which are LightFM's order: the ranker
    learnt only from users with one."""
    predicted = predicted.reshape(b.columns.shape)
    out = np.empty(b.columns.shape, np.float64)
    for lo, hi in b.blocks:
        out[:, lo:hi] = _reorder(predicted[:, lo:hi], b.valid[:, lo:hi] & ~b.new[:, lo:hi])
    out[~b.valid] = -np.inf
    out = out.astype(b.blend.dtype)
    out[~b.warm] = np.take_along_axis(b.blend[~b.warm], b.columns[~b.warm], axis=1)
    return out


def ranked(b: Batch, predicted: np.ndarray) -> np.ndarray:
    """Users x items scores: the candidates ``placed``, every other unseen item below them in
    the blend's order, seen items -inf."""
    top = np.max(b.blend, axis=1, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    scores = b.blend - top - 1.0  # at most -1: under every prediction
    np.put_along_axis(scores, b.columns, placed(b, predicted), axis=1)
    scores[~b.warm] = b.blend[~b.warm]
    return scores


def best_placed(b: Batch, scores: np.ndarray, types: np.ndarray,
                k: int) -> dict[int, tuple[np.ndarray, ...]]:
    """Per item type present (``types``: the items' codes, as ``rf.batch`` had them): the
    columns and ``scores`` of each user's ``k`` best candidates, best first. They are the
    type's ``k`` best items when ``k`` is at most the candidates: every other item is below."""
    lists = {}
    for code, (lo, hi) in zip(np.unique(types), b.blocks, strict=True):
        order = np.argsort(-scores[:, lo:hi], axis=1, kind="stable")[:, :k]
        lists[int(code)] = (np.take_along_axis(b.columns[:, lo:hi], order, axis=1),
                            np.take_along_axis(scores[:, lo:hi], order, axis=1))
    return lists


class Ranker:
    """A trained re-ranker: LightGBM's text model."""

    def __init__(self, text: str, threads: int = 1) -> None:
        self.text = text
        self.threads = threads
        self._booster = lightgbm.Booster(model_str=text)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return self._booster.predict(features, num_threads=self.threads)

    def as_array(self) -> np.ndarray:
        return np.frombuffer(self.text.encode(), np.uint8)

    @classmethod
    def from_array(cls, array: np.ndarray, threads: int = 1) -> Ranker:
        return cls(np.asarray(array, np.uint8).tobytes().decode(), threads)

    def scores(self, lightfm: np.ndarray, history: sp.csr_matrix, repeats: sp.csr_matrix,
               sig: Signals) -> np.ndarray:
        b = batch(lightfm, history, repeats, sig)
        return ranked(b, self.predict(b.features))

    def best(self, lightfm: np.ndarray, history: sp.csr_matrix, repeats: sp.csr_matrix,
             sig: Signals, k: int) -> dict[int, tuple[np.ndarray, ...]]:
        """``best_placed``: what the ``k`` best of ``scores`` per type are, without ranking
        every item; ``k`` at most ``rf.CANDIDATES``."""
        if k > rf.CANDIDATES:
            raise ValueError(f"k={k}: at most the {rf.CANDIDATES} candidates per type")
        b = batch(lightfm, history, repeats, sig)
        return best_placed(b, placed(b, self.predict(b.features)), sig.types, k)


def negative_sample(labels: np.ndarray, seed: int,
                    ratio: int = NEGATIVES_PER_POSITIVE) -> tuple[np.ndarray, np.ndarray]:
    """Every positive and a seeded sample of the negatives, about ``ratio`` per positive (all
    of them when there are fewer): (the rows kept, their weights, 1 / the negatives' rate)."""
    labels = np.asarray(labels, bool)
    positives = int(labels.sum())
    negatives = len(labels) - positives
    rate = 1.0 if negatives == 0 else min(1.0, ratio * max(positives, 1) / negatives)
    keep = labels | (np.random.default_rng(seed).random(len(labels)) < rate)
    rows = np.flatnonzero(keep)
    return rows, np.where(labels[rows], 1.0, 1.0 / rate)


def train_ranker(features: np.ndarray, labels: np.ndarray, threads: int, seed: int) -> Ranker:
    params = {**PARAMS, "num_threads": threads, "seed": seed}
    rows, weights = negative_sample(labels, seed)
    data = lightgbm.Dataset(features[rows], np.asarray(labels)[rows], weight=weights,
                            feature_name=list(rf.FEATURES),
                            categorical_feature=[rf.TYPE_FEATURE], free_raw_data=True)
    booster = lightgbm.train(params, data, num_boost_round=TREES)
    return Ranker(booster.model_to_string(), threads)


class _Known:
    """The candidates and features ``choose`` built for its users (at most ``budget`` bytes:
    users beyond it are not kept, and nothing is copied to merge the batches), to measure the
    cross-fitted pair on those users without building them again. Valid only for the LightFM
    scores they were built from."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.parts: list[tuple[np.ndarray, ...]] = []  # per batch: rows, then Batch fields
        self.blocks: list[tuple[int, int]] = []
        self.users = np.zeros(0, np.int64)  # every kept row, in the order added
        self.starts = np.zeros(0, np.int64)  # where each batch's rows start in ``users``

    def add(self, rows: np.ndarray, b: Batch) -> None:
        kept = (rows, b.columns, b.valid, b.rank, b.new,
                b.features.reshape(*b.columns.shape, -1))
        size = sum(a.nbytes for a in kept)
        if size <= self.budget:
            self.budget -= size
            self.parts.append(kept)
            self.blocks = b.blocks
            self.starts = np.append(self.starts, len(self.users))
            self.users = np.concatenate((self.users, rows))

    def find(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row: whether it is kept, and where (``choose`` adds rows in increasing order)."""
        if not self.parts:
            return np.zeros(len(rows), bool), np.zeros(len(rows), np.int64)
        at = np.minimum(np.searchsorted(self.users, rows), len(self.users) - 1)
        return self.users[at] == rows, at

    def batch(self, lightfm: np.ndarray, history: sp.csr_matrix, at: np.ndarray,
              sig: Signals) -> Batch:
        """The batch ``rf.batch`` would give for the kept users at ``at``: their blend is
        computed again (it is users x items), the rest is the kept one."""
        part = np.searchsorted(self.starts, at, "right") - 1
        fields = [np.empty((len(at), *f.shape[1:]), f.dtype) for f in self.parts[0][1:]]
        for p in np.unique(part):
            mine = part == p
            for out, kept in zip(fields, self.parts[p][1:], strict=True):
                out[mine] = kept[at[mine] - self.starts[p]]
        columns, valid, rank, new, features = fields
        history = itemitem.binary(history)
        blend = rf.blend_parts(lightfm, history, sig)[0]
        return Batch(columns, valid, rank, self.blocks, new, np.diff(history.indptr) > 0,
                     features.reshape(-1, features.shape[-1]), blend)


def cross_fitted(lightfm: ScoreFn, history: sp.csr_matrix, repeats: sp.csr_matrix,
                 sig: Signals, halves: list[Ranker], known: _Known | None = None) -> ScoreFn:
    """Scores where each user is ranked by the half-model that did not learn from them;
    ``known``: candidates and features already built from these ``lightfm`` scores."""
    def predicted(b: Batch, rows: np.ndarray) -> np.ndarray:
        side = np.repeat(rows % 2, b.columns.shape[1])
        values = np.empty(len(side))
        for half in (0, 1):  # each candidate predicted by one half only: half the trees' work
            mine = side == half
            if mine.any():
                values[mine] = halves[1 - half].predict(b.features[mine])
        return ranked(b, values)

    kept = _Known(0) if known is None else known

    def score(rows: np.ndarray) -> np.ndarray:
        scores = lightfm(rows)
        hit, at = kept.find(rows)
        if not hit.any():
            return predicted(batch(scores, history[rows], repeats[rows], sig), rows)
        out = np.empty(scores.shape, np.float32)  # ranked's type: the blend's
        cached = kept.batch(scores[hit], history[rows[hit]], at[hit], sig)
        out[hit] = predicted(cached, rows[hit])
        fresh = ~hit
        if fresh.any():
            built = batch(scores[fresh], history[rows[fresh]], repeats[rows[fresh]], sig)
            out[fresh] = predicted(built, rows[fresh])
        return out

    return score


@dataclass
class Choice:
    """What ``choose`` found on the validation split."""

    ranker: Ranker | None  # None: the blend's order is kept
    precision: dict[str, float] = field(default_factory=dict)  # "blend", "reranked" -> P@10
    reason: str = ""
    halves: list[Ranker] = field(default_factory=list)  # the cross-fitted pair


def choose(lightfm: ScoreFn, train_part: sp.csr_matrix, repeats: sp.csr_matrix,
           held_out: sp.csr_matrix, sig: Signals, blend_precision: float,
           measure: Callable[[ScoreFn], float], threads: int, seed: int,
           max_users: int, say: Say = quiet) -> Choice:
    """Cross-fit on the users with held-out pairs (at most ``max_users``); keep the ranker if
    its out-of-sample validation P@10 (``measure``) beats the blend's, ``blend_precision``."""
    users = np.flatnonzero(np.diff(held_out.indptr) > 0)
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    features, labels, owners, known = [], [], [], _Known(CACHE_BYTES)
    for start in range(0, len(users), BATCH_USERS):
        rows = users[start:start + BATCH_USERS]
        b = batch(lightfm(rows), train_part[rows], repeats[rows], sig)
        known.add(rows, b)
        hits = np.asarray(held_out[rows][np.arange(len(rows))[:, None], b.columns].todense())
        keep = (b.valid & ~b.new).ravel()  # the ranker never moves items nobody used
        features.append(b.features[keep])
        labels.append((hits.ravel() > 0)[keep])
        owners.append(np.repeat(rows, b.columns.shape[1])[keep])
    if not features:
        return Choice(None, reason="no validation users")
    x, y, side = np.concatenate(features), np.concatenate(labels), np.concatenate(owners) % 2
    # Each half must have both kinds of label for LightGBM to learn anything.
    if any(len(np.unique(y[side == half])) < 2 for half in (0, 1)):
        return Choice(None, reason="too few held-out pairs among the candidates")
    halves = []
    for half in (0, 1):
        say(f"re-ranker: LightGBM fit {half + 1} of 3", True)
        halves.append(train_ranker(x[side == half], y[side == half], threads, seed))
    reranked = cross_fitted(lightfm, train_part, repeats, sig, halves, known)
    precision = {"blend": blend_precision, "reranked": measure(reranked)}
    del reranked, known  # before the last fit: it needs only x and y
    if precision["reranked"] <= precision["blend"]:
        return Choice(None, precision, "no better than the blend on validation")
    say("re-ranker: LightGBM fit 3 of 3", True)
    return Choice(train_ranker(x, y, threads, seed), precision, halves=halves)
