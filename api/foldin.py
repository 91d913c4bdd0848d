"""Real-time scores for a user without a published list, from their recent interactions.

The user is folded into the published model: their vector is the mean of the embeddings of the
items they interacted with, weighted by rating + 1 as in training, and every item is scored as
``item_embeddings @ user + item_biases``. Only numpy is needed; the arrays come from the version's
``model`` hash (docs/redis-keys.md, decoded by published.savedmodel) and are kept while that
version is current.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

import numpy as np

from published.savedmodel import ItemVectors
from runtime.items import parse_item_key


class ModelArrays:
    """The item side of a published model, indexed by (type code, Totara id)."""

    def __init__(self, numbers: np.ndarray, types: np.ndarray, embeddings: np.ndarray,
                 biases: np.ndarray) -> None:
        self.numbers = numbers
        self.types = types
        self.embeddings = embeddings
        self.biases = biases
        # One sorted int64 key per row, (type << 32) | id, so that events are looked up with
        # searchsorted instead of a per-item Python dict built for every version.
        packed = (types.astype(np.int64) << 32) | numbers.astype(np.int64)
        self._order = np.argsort(packed, kind="stable")
        self._sorted = packed[self._order]

    @classmethod
    def from_fields(cls, fields: Mapping[str, bytes | None]) -> ModelArrays | None:
        """Decode the ``model`` hash; None when it is absent or inconsistent."""
        items = ItemVectors.from_model_hash(fields)
        if items is None:
            return None
        return cls(items.numbers, items.types, items.embeddings, items.biases)

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """Row of each packed (type << 32 | id) key, -1 where the model does not know it."""
        pos = np.searchsorted(self._sorted, keys)
        pos = np.minimum(pos, len(self._sorted) - 1)
        found = self._sorted[pos] == keys if len(self._sorted) else np.zeros(len(keys), bool)
        return np.where(found, self._order[pos], -1)

    def recommend(self, events: Iterable[bytes], type_code: int,
                  n_items: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Top ``n_items`` of ``type_code`` for a user with these recent events (JSON, newest
        first), excluding the items they interacted with; None when no event names a known item.
        """
        keys, weights = _event_keys(events)
        if not keys:
            return None
        rows = self.rows(np.array(keys, dtype=np.int64))
        known = rows >= 0
        if not known.any():
            return None
        rows, w = rows[known], np.array(weights, dtype=np.float32)[known]
        user = (w @ self.embeddings[rows]) / w.sum()
        scores = self.embeddings @ user + self.biases
        candidates = self.types == type_code
        candidates[rows] = False
        index = np.flatnonzero(candidates)
        if len(index) == 0:
            return np.empty(0, "<u4"), np.empty(0, "<f4")
        take = min(n_items, len(index))
        cand_scores = scores[index]
        best = np.argpartition(-cand_scores, take - 1)[:take]
        best = best[np.argsort(-cand_scores[best], kind="stable")]
        return self.numbers[index[best]], cand_scores[best]


def _event_keys(events: Iterable[bytes]) -> tuple[list[int], list[float]]:
    """Packed item keys and weights (rating + 1) of the events, newest event per item only."""
    seen: dict[int, float] = {}
    for raw in events:
        try:
            event = json.loads(raw)
            parsed = parse_item_key(event["item_id"])
            rating = float(event.get("rating", 0))
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # one unreadable event must not cost the user their recommendations
        if parsed is None:
            continue
        key = (parsed[0] << 32) | parsed[1]
        if key not in seen:  # events are newest first, as training keeps the latest row
            # Ratings are 0 or 1 (contract §4); the comparison also maps NaN to 0.
            seen[key] = 2.0 if rating >= 1.0 else 1.0
    return list(seen), list(seen.values())
