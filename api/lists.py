"""The lists /user-items and /similar-items serve, as arrays: the explorer shows the same ones.

Both endpoints and the explorer call these functions, so what the explorer shows is what Totara
gets, by construction; they differ only in how they format the answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from api.reader import Reader, Version
from published import packing
from runtime.items import TYPE_CODE, item_key, parse_item_key

_ARTICLE = TYPE_CODE["engage_article"]
_MICRO = TYPE_CODE["engage_microlearning"]


class Source(StrEnum):
    """Where a user's list comes from."""

    PUBLISHED = "published"  # the user's precomputed list
    FOLD_IN = "fold_in"  # computed from their recent interactions (api.foldin)
    POPULAR = "popular"  # the tenant's popularity list


@dataclass(frozen=True)
class UserList:
    ids: np.ndarray  # uint32
    scores: np.ndarray  # float32
    source: Source


def user_list(reader: Reader, version: Version, user_id: int, type_code: int,
              n_items: int) -> UserList:
    """The user's list of ``type_code`` (at least its first ``n_items`` entries)."""
    blob = reader.user_lists(version, user_id)
    if blob is not None:
        return UserList(*packing.unpack(blob, type_code), Source.PUBLISHED)
    events = reader.recent_events(version.tenant, user_id)
    if events:
        model = reader.model(version)
        found = model.recommend(events, type_code, n_items) if model else None
        if found is not None:
            return UserList(*found, Source.FOLD_IN)
    return UserList(*version.popular_list(type_code), Source.POPULAR)


def similar_list(reader: Reader, version: Version,
                 item_id: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The item's similar items, best first, never itself; None for an unknown item."""
    parsed = parse_item_key(item_id)
    if parsed is None:
        return None
    type_code, number = parsed
    fields = [item_id]
    if type_code == _ARTICLE:
        # Totara sends engage_article<id> for micro-learning too; both share a bucket, so
        # the retry is a second field of the same HMGET.
        fields.append(item_key(_MICRO, number))
    blob = next((b for b in reader.similar_lists(version, number, fields) if b), None)
    if blob is None:
        return None
    ids, scores = packing.unpack(blob, 0)
    itself = ids == number
    if itself.any():  # the publisher never stores it; this keeps the promise regardless
        ids, scores = ids[~itself], scores[~itself]
    return ids, scores
