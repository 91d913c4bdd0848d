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
LightGBM.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import lightgbm
import numpy as np
import scipy.sparse as sp

from recommender.model import itemitem
from recommender.outcome import Say, quiet

ScoreFn = Callable[[np.ndarray], np.ndarray]  # rows -> users x items (recommender.model.ranking)

CANDIDATES = 50  # per item type: the published lists' default length (ML_TOP_K)
CLOSE = 0.3  # cosine above which a history item counts as close to a candidate
TREES = 150
TIE_STEP = 1e-6  # per blend rank, subtracted from predictions: above float32's step near 1
BATCH_USERS = 512  # a batch holds a few users x items float arrays
PARAMS = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 31,
          "min_data_in_leaf": 100, "feature_fraction": 0.8, "bagging_fraction": 0.8,
          "bagging_freq": 1, "deterministic": True, "force_row_wise": True, "verbose": -1}
FEATURES = ("lightfm_z", "item_item_z", "blend", "item_item", "lightfm", "type_rank",
            "log_popularity", "log_history", "type", "type_share", "max_cosine", "close_items",
            "max_weight", "knn_z", "repeats_item_item_z", "item_repeat_share",
            "user_repeat_share")
TYPE_FEATURE = FEATURES.index("type")


@dataclass
class Signals:
    """What features need beyond a batch of users, in the column order of the scores."""

    item_item: np.ndarray  # EASE^R weights, items x items
    weight: float  # the blend's weight on the item-item part
    cosine: np.ndarray  # co-occurrence cosine, items x items, zero diagonal
    log_popularity: np.ndarray  # log(1 + users of the item)
    repeat_share: np.ndarray  # share of the item's users with rating 1
    types: np.ndarray  # item type codes


def signals(history: sp.csr_matrix, repeats: sp.csr_matrix, item_item: np.ndarray,
            weight: float, types: np.ndarray) -> Signals:
    """``history``: users x items interactions; ``repeats``: those with rating 1."""
    binary = itemitem.binary(history)
    co = itemitem.gram(binary)
    norm = np.sqrt(np.diag(co))
    norm[norm == 0] = 1.0
    # C order: the Gram matrix comes out in Fortran order, which sparse @ dense would copy.
    cosine = np.ascontiguousarray(co / norm[:, None] / norm[None, :], dtype=np.float32)
    np.fill_diagonal(cosine, 0.0)
    users = np.diff(binary.tocsc().indptr).astype(np.float64)
    repeated = np.diff(itemitem.binary(repeats).tocsc().indptr)
    return Signals(np.asarray(item_item, np.float32), weight, cosine,
                   np.log1p(users).astype(np.float32),
                   (repeated / np.maximum(users, 1)).astype(np.float32), np.asarray(types))


@dataclass
class Batch:
    """One batch of users' candidates: ``columns[i, j]`` is user i's j-th candidate item."""

    columns: np.ndarray  # int64 users x candidates
    valid: np.ndarray  # bool: false where a type has fewer unseen items than candidates
    rank: np.ndarray  # float32: the candidate's place by the blend within its type, from 0
    blocks: list[tuple[int, int]]  # the candidate columns of each type
    new: np.ndarray  # bool: the candidate item has no interactions (it keeps its place)
    warm: np.ndarray  # bool per user: has a history (the others keep LightFM's order)
    features: np.ndarray  # float32 (users * candidates) x FEATURES
    blend: np.ndarray  # the blend's scores, users x items, seen items -inf


def _z(scores: np.ndarray, seen: sp.csr_matrix) -> np.ndarray:
    itemitem.standardise(scores, seen)
    return scores


def _candidates(blend: np.ndarray, types: np.ndarray,
                n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Per type the ``n`` best columns by ``blend``: (columns, rank within the type, valid,
    each type's span of candidate columns)."""
    columns, ranks, blocks, start = [], [], [], 0
    for code in np.unique(types):
        members = np.flatnonzero(types == code)
        take = min(n, len(members))
        block = blend[:, members]
        best = np.argpartition(block, len(members) - take, axis=1)[:, len(members) - take:]
        order = np.argsort(-np.take_along_axis(block, best, axis=1), axis=1, kind="stable")
        columns.append(members[np.take_along_axis(best, order, axis=1)])
        ranks.append(np.broadcast_to(np.arange(take, dtype=np.float32), best.shape))
        blocks.append((start, start + take))
        start += take
    picked = np.concatenate(columns, axis=1)
    valid = np.isfinite(np.take_along_axis(blend, picked, axis=1))
    return picked, np.concatenate(ranks, axis=1), valid, blocks


def _over_history(history: sp.csr_matrix, matrix: np.ndarray, columns: np.ndarray,
                  close: float | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Per (user, candidate): the largest ``matrix[h, candidate]`` over the user's items h and,
    given ``close``, how many of them exceed it (else None). Zero for users without history."""
    counts = np.diff(history.indptr)
    rows = np.repeat(np.arange(len(columns)), counts)
    values = matrix[history.indices[:, None], columns[rows]]  # stored pairs x candidates
    largest = np.zeros(columns.shape, np.float32)
    above = None if close is None else np.zeros(columns.shape, np.float32)
    has = counts > 0
    if has.any():
        starts = history.indptr[:-1][has]
        largest[has] = np.maximum.reduceat(values, starts, axis=0)
        if above is not None:
            above[has] = np.add.reduceat((values > close).astype(np.float32), starts, axis=0)
    return largest, above


def batch(lightfm: np.ndarray, history: sp.csr_matrix, repeats: sp.csr_matrix, sig: Signals,
          n: int = CANDIDATES) -> Batch:
    """Candidates and features of a batch: ``lightfm`` is its LightFM scores (overwritten),
    ``history`` and ``repeats`` its rows of the interactions and of those with rating 1."""
    history = itemitem.binary(history)
    repeats = itemitem.binary(repeats)
    weights = sig.item_item
    raw_lightfm = lightfm.copy()
    item_item = np.asarray(history @ weights, dtype=np.float32)
    lightfm_z = _z(lightfm, history)
    item_item_z = _z(item_item.copy(), history)
    blend = lightfm_z + sig.weight * item_item_z
    rows = np.repeat(np.arange(len(blend)), np.diff(history.indptr))
    blend[rows, history.indices] = -np.inf
    columns, rank, valid, blocks = _candidates(blend, sig.types, n)
    r = np.arange(len(columns))[:, None]
    n_history = np.diff(history.indptr).astype(np.float32)
    per_type = history @ sp.csr_matrix(
        (np.ones(len(sig.types), np.float32), (np.arange(len(sig.types)), sig.types)))
    type_share = per_type.toarray() / np.maximum(n_history, 1)[:, None]
    largest_cosine, close = _over_history(history, sig.cosine, columns, CLOSE)
    largest_weight, _ = _over_history(history, weights, columns)
    knn_z = _z(np.asarray(history @ sig.cosine, dtype=np.float32), history)
    repeats_z = _z(np.asarray(repeats @ weights, dtype=np.float32), history)
    user_repeats = np.diff(repeats.indptr) / np.maximum(n_history, 1)
    per_user = np.ones_like(columns, dtype=np.float32)
    candidate_types = sig.types[columns]
    parts = (lightfm_z[r, columns], item_item_z[r, columns], blend[r, columns],
             item_item[r, columns], raw_lightfm[r, columns], np.log1p(rank),
             sig.log_popularity[columns], per_user * np.log1p(n_history)[:, None],
             candidate_types.astype(np.float32), type_share[r, candidate_types],
             largest_cosine, close, largest_weight, knn_z[r, columns], repeats_z[r, columns],
             sig.repeat_share[columns], per_user * user_repeats[:, None])
    features = np.stack([np.asarray(p, np.float32).ravel() for p in parts], axis=1)
    return Batch(columns, valid, rank, blocks, sig.log_popularity[columns] == 0, n_history > 0,
                 np.nan_to_num(features, posinf=0.0, neginf=0.0), blend)


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


def ranked(b: Batch, predicted: np.ndarray) -> np.ndarray:
    """Users x items scores: per type, the candidates by ``predicted`` (in [0, 1]) except those
    of items nobody has used, which keep the place the blend gave them (the ranker knows
    nothing of them; LightFM's features do); every other unseen item below the candidates in
    the blend's order; seen items -inf. Users without history keep the blend's scores, which
    are LightFM's order: the ranker learnt only from users with one."""
    top = np.max(b.blend, axis=1, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    scores = b.blend - top - 1.0  # at most -1: under every prediction
    predicted = predicted.reshape(b.columns.shape)
    placed = np.empty(b.columns.shape, np.float64)
    for lo, hi in b.blocks:
        placed[:, lo:hi] = _reorder(predicted[:, lo:hi], b.valid[:, lo:hi] & ~b.new[:, lo:hi])
    placed[~b.valid] = -np.inf
    np.put_along_axis(scores, b.columns, placed.astype(scores.dtype), axis=1)
    scores[~b.warm] = b.blend[~b.warm]
    return scores


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


def train_ranker(features: np.ndarray, labels: np.ndarray, threads: int, seed: int) -> Ranker:
    params = {**PARAMS, "num_threads": threads, "seed": seed}
    data = lightgbm.Dataset(features, labels, feature_name=list(FEATURES),
                            categorical_feature=[TYPE_FEATURE], free_raw_data=True)
    booster = lightgbm.train(params, data, num_boost_round=TREES)
    return Ranker(booster.model_to_string(), threads)


def cross_fitted(lightfm: ScoreFn, history: sp.csr_matrix, repeats: sp.csr_matrix,
                 sig: Signals, halves: list[Ranker]) -> ScoreFn:
    """Scores where each user is ranked by the half-model that did not learn from them."""
    def score(rows: np.ndarray) -> np.ndarray:
        b = batch(lightfm(rows), history[rows], repeats[rows], sig)
        side = np.repeat(rows % 2, b.columns.shape[1])
        return ranked(b, np.where(side == 0, halves[1].predict(b.features),
                                  halves[0].predict(b.features)))

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
    features, labels, owners = [], [], []
    for start in range(0, len(users), BATCH_USERS):
        rows = users[start:start + BATCH_USERS]
        b = batch(lightfm(rows), train_part[rows], repeats[rows], sig)
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
    reranked = cross_fitted(lightfm, train_part, repeats, sig, halves)
    precision = {"blend": blend_precision, "reranked": measure(reranked)}
    if precision["reranked"] <= precision["blend"]:
        return Choice(None, precision, "no better than the blend on validation")
    say("re-ranker: LightGBM fit 3 of 3", True)
    return Choice(train_ranker(x, y, threads, seed), precision, halves=halves)
