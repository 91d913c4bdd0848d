"""The re-ranker's candidates and their features (recommender.model.rerank learns from them).

Every items x items input is sparse: the item-item weights keep each item's nearest neighbours
only, and the co-occurrence cosine is stored on exactly the same pairs. A pair that is not
stored counts as 0 in every feature, as it does in the item-item scores (``history @ weights``).
Nothing here is items x items and dense; a batch's users x items arrays are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.model import itemitem

CANDIDATES = 50  # per item type: the published lists' default length (ML_TOP_K)
# Users x items cells in a chunk of ``_stored_over_history``'s lookup table (int32 slots):
# 32 MB at most, whatever the catalogue's size, and cell numbers fit in int32.
CELLS = 1 << 23
CLOSE = 0.3  # cosine above which a history item counts as close to a candidate
FEATURES = ("lightfm_z", "item_item_z", "blend", "item_item", "lightfm", "type_rank",
            "log_popularity", "log_history", "type", "type_share", "max_cosine", "close_items",
            "max_weight", "knn_z", "repeats_item_item_z", "item_repeat_share",
            "user_repeat_share")
TYPE_FEATURE = FEATURES.index("type")


@dataclass
class Signals:
    """What features need beyond a batch of users, in the column order of the scores."""

    item_item: sp.csr_matrix  # item-item weights, items x items, float32
    weight: float  # the blend's weight on the item-item part
    cosine: sp.csr_matrix  # co-occurrence cosine on item_item's pairs, zero diagonal
    log_popularity: np.ndarray  # log(1 + users of the item)
    repeat_share: np.ndarray  # share of the item's users with rating 1
    types: np.ndarray  # item type codes


def _without_diagonal(matrix: sp.spmatrix) -> sp.csr_matrix:
    """As float32 with its stored diagonal entries 0 (still stored: the pattern is kept),
    copied only if one is not 0 already. An item is not its own neighbour: its cosine with
    itself, 1, would say nothing."""
    matrix = sp.csr_matrix(matrix, dtype=np.float32)
    diagonal = matrix.indices == np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
    if not matrix.data[diagonal].any():
        return matrix
    copy = matrix.copy()
    copy.data[diagonal] = 0.0
    return copy


def signals(history: sp.csr_matrix, repeats: sp.csr_matrix, item_item: sp.csr_matrix,
            cosine: sp.csr_matrix, weight: float, types: np.ndarray) -> Signals:
    """``history``: users x items interactions; ``repeats``: those with rating 1;
    ``item_item``: the weights (``history @ item_item`` scores); ``cosine``: the co-occurrence
    cosine co(h, c) / sqrt(co(h, h) co(c, c)) of the same pairs."""
    if item_item.shape != cosine.shape:
        raise ValueError(f"weights {item_item.shape} and cosine {cosine.shape} differ in shape")
    users = np.diff(itemitem.binary(history).tocsc().indptr).astype(np.float64)
    repeated = np.diff(itemitem.binary(repeats).tocsc().indptr)
    return Signals(sp.csr_matrix(item_item, dtype=np.float32), weight, _without_diagonal(cosine),
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
        contiguous = members[-1] - members[0] + 1 == len(members)  # as precompute orders them
        block = blend[:, members[0]:members[-1] + 1] if contiguous else blend[:, members]
        best = np.argpartition(block, len(members) - take, axis=1)[:, len(members) - take:]
        order = np.argsort(-np.take_along_axis(block, best, axis=1), axis=1, kind="stable")
        columns.append(members[np.take_along_axis(best, order, axis=1)])
        ranks.append(np.broadcast_to(np.arange(take, dtype=np.float32), best.shape))
        blocks.append((start, start + take))
        start += take
    picked = np.concatenate(columns, axis=1)
    valid = np.isfinite(np.take_along_axis(blend, picked, axis=1))
    return picked, np.concatenate(ranks, axis=1), valid, blocks


def _stored_over_history(history: sp.csr_matrix, pattern: sp.csr_matrix,
                         data: list[np.ndarray], columns: np.ndarray,
                         closes: list[float]) -> tuple[np.ndarray, list[tuple[np.ndarray, ...]]]:
    """Per (user, candidate), over the pairs ``pattern`` stores in the rows of the user's
    history items: how many, and per array of ``data`` (values on those pairs, in the order of
    ``pattern.data``) their maximum and how many exceed its ``closes``; 0 where none is.

    Each stored pair is looked up in a users x items table of candidate slots and the pairs
    that land on one are reduced per slot (``ufunc.at``, ``bincount``: no sort), a few users at
    a time so that a table holds at most ``CELLS``."""
    n_items, width = pattern.shape[1], columns.shape[1]
    stored = np.zeros(columns.shape, np.int64)
    reduced = [(np.zeros(columns.shape, values.dtype), np.zeros(columns.shape, np.int64))
               for values in data]
    step = max(1, CELLS // max(n_items, 1))
    for lo in range(0, columns.shape[0], step):
        part = history[lo:lo + step]
        cells, positions = _history_pairs(part, pattern)
        target = (np.arange(part.shape[0])[:, None] * n_items + columns[lo:lo + step]).ravel()
        slot_of = np.full(part.shape[0] * n_items, -1, np.int32)
        slot_of[target] = np.arange(len(target), dtype=np.int32)
        at = slot_of[target]  # a candidate listed twice reads the slot both share
        slots = slot_of[cells]
        hit = slots >= 0
        slots, positions = slots[hit], positions[hit]
        found = np.bincount(slots, minlength=len(target))[at].reshape(-1, width)
        stored[lo:lo + step] = found
        for (largest, above), values, close in zip(reduced, data, closes, strict=True):
            picked = values[positions]
            best = np.full(len(target), -np.inf, values.dtype)
            np.maximum.at(best, slots, picked)
            largest[lo:lo + step] = np.where(found > 0, best[at].reshape(found.shape), 0)
            counted = np.bincount(slots[picked > close], minlength=len(target))
            above[lo:lo + step] = counted[at].reshape(found.shape)
    return stored, reduced


def _history_pairs(history: sp.csr_matrix, pattern: sp.csr_matrix) -> tuple[np.ndarray, ...]:
    """The pairs ``pattern`` stores in the rows of each user's history items, one after
    another (the cost is the nnz of those rows): each one's users x items cell
    (``user * n_items + column``, int32: a chunk has at most ``CELLS``) and its position in
    ``pattern.data``."""
    index = np.int32 if pattern.nnz < np.iinfo(np.int32).max else np.int64
    where = sp.csr_matrix((np.arange(pattern.nnz, dtype=index), pattern.indices, pattern.indptr),
                          shape=pattern.shape)[history.indices]  # scipy copies row by row
    first = np.arange(history.shape[0], dtype=np.int32) * np.int32(pattern.shape[1])
    owner = np.repeat(first, np.diff(history.indptr))
    return np.repeat(owner, np.diff(where.indptr)) + where.indices, where.data


def _over_pairs(history: sp.csr_matrix, pattern: sp.csr_matrix, data: list[np.ndarray],
                columns: np.ndarray,
                closes: list[float | None]) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """``_over_history`` for several matrices on the pairs of ``pattern`` (``data``: each
    one's values in the order of ``pattern.data``), sharing the work of finding the pairs."""
    thresholds = [np.inf if close is None else close for close in closes]
    stored, reduced = _stored_over_history(history, pattern, data, columns, thresholds)
    unstored = np.diff(history.indptr)[:, None] - stored  # history items not storing c
    out = []
    for (largest, above), values, close in zip(reduced, data, closes, strict=True):
        largest = np.where(unstored > 0, np.maximum(largest, 0), largest).astype(np.float32)
        # 0 compared as the stored values are: in their type (close -1e-60 is -0 in float32)
        out.append((largest, None if close is None else
                    (above + unstored * (values.dtype.type(0) > close)).astype(np.float32)))
    return out


def _over_history(history: sp.csr_matrix, matrix: sp.csr_matrix, columns: np.ndarray,
                  close: float | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Per (user, candidate c): the largest ``matrix[h, c]`` over the user's history items h
    and, given ``close``, how many of them exceed it (else None).

    A pair (h, c) the matrix does not store counts as 0, as in ``matrix.toarray()``: the
    largest is the largest stored value if every history item stores c, else the larger of it
    and 0 (0 when none does). Users without history get 0 for both. ``history`` is binary and
    canonical (no duplicate entries); ``columns`` is users x candidates, repeats allowed.
    """
    return _over_pairs(history, matrix, [matrix.data], columns, [close])[0]


def _over_cosine_and_weights(history: sp.csr_matrix, sig: Signals,
                             columns: np.ndarray) -> tuple[np.ndarray, ...]:
    """The largest cosine, the close count and the largest weight over each history: in one
    pass when both matrices store the same pairs, as they should."""
    cosine, weights = sig.cosine, sig.item_item
    if (np.array_equal(cosine.indptr, weights.indptr)
            and np.array_equal(cosine.indices, weights.indices)):
        (largest_cosine, close), (largest_weight, _) = _over_pairs(
            history, cosine, [cosine.data, weights.data], columns, [CLOSE, None])
    else:
        largest_cosine, close = _over_history(history, cosine, columns, CLOSE)
        largest_weight, _ = _over_history(history, weights, columns)
    return largest_cosine, close, largest_weight


def blend_parts(lightfm: np.ndarray, history: sp.csr_matrix,
                sig: Signals) -> tuple[np.ndarray, ...]:
    """A batch's scores (users x items): (the blend with seen items -inf, LightFM's and the
    item-item part's standardised, the item-item part's raw, LightFM's raw). ``history`` is
    binary; ``lightfm`` is overwritten."""
    raw_lightfm = lightfm.copy()
    item_item = itemitem.scored(history, sig.item_item)
    lightfm_z = _z(lightfm, history)
    item_item_z = _z(item_item.copy(), history)
    blend = lightfm_z + sig.weight * item_item_z
    rows = np.repeat(np.arange(len(blend)), np.diff(history.indptr))
    blend[rows, history.indices] = -np.inf
    return blend, lightfm_z, item_item_z, item_item, raw_lightfm


def batch(lightfm: np.ndarray, history: sp.csr_matrix, repeats: sp.csr_matrix, sig: Signals,
          n: int = CANDIDATES) -> Batch:
    """Candidates and features of a batch: ``lightfm`` is its LightFM scores (overwritten),
    ``history`` and ``repeats`` its rows of the interactions and of those with rating 1."""
    history = itemitem.binary(history)
    repeats = itemitem.binary(repeats)
    blend, lightfm_z, item_item_z, item_item, raw_lightfm = blend_parts(lightfm, history, sig)
    columns, rank, valid, blocks = _candidates(blend, sig.types, n)
    r = np.arange(len(columns))[:, None]
    n_history = np.diff(history.indptr).astype(np.float32)
    per_type = history @ sp.csr_matrix(
        (np.ones(len(sig.types), np.float32), (np.arange(len(sig.types)), sig.types)))
    type_share = per_type.toarray() / np.maximum(n_history, 1)[:, None]
    largest_cosine, close, largest_weight = _over_cosine_and_weights(history, sig, columns)
    knn_z = _z(itemitem.scored(history, sig.cosine), history)
    repeats_z = _z(itemitem.scored(repeats, sig.item_item), history)
    user_repeats = np.diff(repeats.indptr) / np.maximum(n_history, 1)
    per_user = np.ones_like(columns, dtype=np.float32)
    candidate_types = sig.types[columns]
    parts = (lightfm_z[r, columns], item_item_z[r, columns], blend[r, columns],
             item_item[r, columns], raw_lightfm[r, columns], np.log1p(rank),
             sig.log_popularity[columns], per_user * np.log1p(n_history)[:, None],
             candidate_types.astype(np.float32), type_share[r, candidate_types],
             largest_cosine, close, largest_weight, knn_z[r, columns], repeats_z[r, columns],
             sig.repeat_share[columns], per_user * user_repeats[:, None])
    features = np.empty((columns.size, len(parts)), np.float32)
    for j, part in enumerate(parts):
        features[:, j] = np.ravel(part)
    np.nan_to_num(features, copy=False, posinf=0.0, neginf=0.0)
    return Batch(columns, valid, rank, blocks, sig.log_popularity[columns] == 0, n_history > 0,
                 features, blend)
