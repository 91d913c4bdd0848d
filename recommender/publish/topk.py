"""Precompute top-K lists from item and user representations, batch by batch.

Scores are ``user · item + item bias`` (LightFM's prediction without the user bias, which does not
change a user's ranking), with the layers the model chose on top for users with a history
(recommender.model.ensemble: the item-item blend, then the re-ranker). Items are reordered by type
once, so each type is a contiguous column block: a batch costs one matrix product, then one
``argpartition`` per type. Lists are packed (published.packing) as they are produced, so a
tenant's lists never sit in Python objects all at once."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from published import packing
from recommender.model import ensemble, rerank
from recommender.model.itemitem import ItemItem
from recommender.model.ranking import mask_rows, top_k
from runtime.items import FAMILIES, ITEM_TYPES

BATCH_USERS = 2048


@dataclass
class Embeddings:
    """What precompute needs, from a fresh fit or from a saved model (publish.modelfile)."""

    user_ids: np.ndarray  # int64, row i = user i
    user_emb: np.ndarray  # float32 users x dim
    item_keys: list[str]
    item_numbers: np.ndarray  # uint32
    item_types: np.ndarray  # uint8
    item_emb: np.ndarray  # float32 items x dim
    item_bias: np.ndarray  # float32 items
    positives: sp.csr_matrix  # users x items: the user already interacted with the item
    popularity: np.ndarray  # float32 items: share of users who interacted
    item_item: ItemItem | None = None  # blended at ``blend_weight``
    blend_weight: float = 0.0
    ranker: rerank.Ranker | None = None  # reorders the blend's candidates
    repeats: sp.csr_matrix | None = None  # users x items: the rating-1 pairs, for the ranker


class _TypeOrder:
    """Items sorted by type: ``perm[j]`` is the original row of column j; bounds per type."""

    def __init__(self, item_types: np.ndarray) -> None:
        self.perm = np.argsort(item_types, kind="stable")
        sorted_types = item_types[self.perm]
        self.bounds = [(int(np.searchsorted(sorted_types, t, "left")),
                        int(np.searchsorted(sorted_types, t, "right")))
                       for t in range(len(ITEM_TYPES))]


def _rows_as_bytes(parts: list[np.ndarray]) -> tuple[np.ndarray, int]:
    """Concatenate per-row uint32/float32 blocks into one (rows x width) byte matrix."""
    as_bytes = [np.ascontiguousarray(p).view(np.uint8) for p in parts]
    body = np.concatenate(as_bytes, axis=1) if as_bytes else np.empty((0, 0), np.uint8)
    return body, body.shape[1]


def _pack_batch(sections: list[tuple[np.ndarray, np.ndarray]], capacity: list[int]) -> list[bytes]:
    """Pack each row's sections; rows whose lists are all full share one header (fast path)."""
    n_rows = sections[0][0].shape[0]
    finite = np.stack([np.isfinite(scores).sum(axis=1) for _, scores in sections], axis=1)
    full = (finite == np.asarray(capacity)).all(axis=1)
    header = struct.pack(f"<BB{len(sections)}H", packing.FORMAT, len(sections), *capacity)
    parts = []
    for ids, scores in sections:
        parts += [ids.astype("<u4"), scores.astype("<f4")]
    body, width = _rows_as_bytes(parts)
    raw = body.tobytes()
    blobs = []
    for row in range(n_rows):
        if full[row]:
            blobs.append(header + raw[row * width:(row + 1) * width])
        else:
            blobs.append(packing.pack([(ids[row, :c], scores[row, :c]) for (ids, scores), c
                                       in zip(sections, finite[row], strict=True)]))
    return blobs


def user_lists(emb: Embeddings, k: int,
               batch: int = BATCH_USERS) -> Iterator[list[tuple[int, bytes]]]:
    """Per batch of users: ``(user id, packed lists)``, one section per item type."""
    order = _TypeOrder(emb.item_types)
    items = np.ascontiguousarray(emb.item_emb[order.perm].T)
    bias = emb.item_bias[order.perm]
    numbers = emb.item_numbers[order.perm]
    positives = emb.positives[:, order.perm].tocsr()
    item_item = None
    if emb.item_item is not None and emb.blend_weight:
        item_item = emb.item_item.permuted(order.perm)
    repeats = None if emb.repeats is None else emb.repeats[:, order.perm].tocsr()

    def lightfm(rows: np.ndarray) -> np.ndarray:
        scores = emb.user_emb[rows] @ items
        scores += bias
        return scores

    types = emb.item_types[order.perm]
    best = ensemble.best_lists(lightfm, positives, repeats, item_item, emb.blend_weight,
                               emb.ranker, types, k)
    score = ensemble.scorer(lightfm, positives, repeats, item_item, emb.blend_weight,
                            emb.ranker, types) if best is None else None
    if emb.ranker is not None:
        batch = min(batch, rerank.BATCH_USERS)
    capacity = [min(k, hi - lo) for lo, hi in order.bounds]
    for start in range(0, len(emb.user_ids), batch):
        rows = np.arange(start, min(start + batch, len(emb.user_ids)))
        if best is not None:
            sections = _found_sections(best(rows), numbers, len(order.bounds), len(rows))
        else:
            scores = score(rows)
            mask_rows(scores, positives, start)
            sections = _ranked_sections(scores, order.bounds, numbers, k)
        ids = emb.user_ids[start:start + batch]
        yield list(zip(ids.tolist(), _pack_batch(sections, capacity), strict=True))


def _found_sections(found: dict[int, tuple[np.ndarray, np.ndarray]], numbers: np.ndarray,
                    n_types: int, n_users: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``ensemble.best_lists``'s columns and scores per type code, as item numbers; a type
    with no item gets empty sections."""
    empty = np.empty((n_users, 0))
    return [(numbers[found[code][0]], found[code][1]) if code in found
            else (empty.astype(numbers.dtype), empty.astype(np.float32))
            for code in range(n_types)]


def _ranked_sections(scores: np.ndarray, bounds: list[tuple[int, int]], numbers: np.ndarray,
                     k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``k`` best of each type's columns of ``scores`` (seen items masked), as item
    numbers and scores."""
    sections = []
    for lo, hi in bounds:
        idx, vals = top_k(scores[:, lo:hi], k)
        sections.append((numbers[lo + idx], vals))
    return sections


def similar_lists(emb: Embeddings, k: int,
                  batch: int = BATCH_USERS) -> Iterator[list[tuple[str, int, bytes]]]:
    """Per batch of items: ``(item key, item number, packed similar items of its family)``."""
    order = _TypeOrder(emb.item_types)
    norms = np.linalg.norm(emb.item_emb, axis=1, keepdims=True)
    unit = (emb.item_emb / np.where(norms == 0, 1.0, norms)).astype(np.float32)[order.perm]
    numbers = emb.item_numbers[order.perm]
    keys = [emb.item_keys[i] for i in order.perm]
    for family in FAMILIES:
        lo, hi = order.bounds[family[0]][0], order.bounds[family[-1]][1]
        members = np.ascontiguousarray(unit[lo:hi].T)
        capacity = [min(k, hi - lo - 1)]
        for start in range(lo, hi, batch):
            stop = min(start + batch, hi)
            scores = unit[start:stop] @ members
            scores[np.arange(stop - start), np.arange(start - lo, stop - lo)] = -np.inf
            idx, vals = top_k(scores, capacity[0])
            blobs = _pack_batch([(numbers[lo + idx], vals)], capacity)
            yield [(keys[j], int(numbers[j]), blob)
                   for j, blob in zip(range(start, stop), blobs, strict=True)]


def popular_lists(emb: Embeddings, k: int) -> bytes:
    """The most interacted-with items of each type, for users the model does not know."""
    sections = []
    for t in range(len(ITEM_TYPES)):
        rows = np.flatnonzero(emb.item_types == t)
        idx, vals = top_k(emb.popularity[rows][None, :], k)
        sections.append((emb.item_numbers[rows[idx[0]]], vals[0]))
    return packing.pack(sections)
