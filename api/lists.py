"""The lists /user-items and /similar-items serve, as arrays: the explorer shows the same ones.

Both endpoints and the explorer call these functions, so what the explorer shows is what Totara
gets, by construction; they differ only in how they format the answer. A stored value that does
not decode is answered as if it were absent, and logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import NamedTuple, Protocol

import numpy as np

from api.foldin import ModelArrays
from api.reader import Reader, Version
from published import packing
from runtime.errors import CorruptListError
from runtime.items import TYPE_CODE, item_key, parse_item_key

_ARTICLE = TYPE_CODE["engage_article"]
_MICRO = TYPE_CODE["engage_microlearning"]


class Source(StrEnum):
    """Where a user's list comes from."""

    PUBLISHED = "published"  # the user's precomputed list
    FOLD_IN = "fold_in"  # computed from their recent interactions (api.foldin)
    POPULAR = "popular"  # the tenant's popularity list


class ListReader(Protocol):
    """What the lists are read through: api.reader.Reader, or a page's ``OncePerPage``."""

    def user_lists(self, version: Version, user_id: int) -> bytes | None: ...
    def recent_events(self, tenant: str, user_id: int) -> list[bytes]: ...
    def model(self, version: Version) -> ModelArrays | None: ...
    def similar_lists(self, version: Version, number: int,
                      fields: Sequence[str]) -> list[bytes | None]: ...


class OncePerPage:
    """A Reader whose user values are read once: a page asks for the five lists of one user,
    which are one value in Redis (and one list of recent events)."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self._lists: dict[int, bytes | None] = {}
        self._events: dict[tuple[str, int], list[bytes]] = {}

    def user_lists(self, version: Version, user_id: int) -> bytes | None:
        if user_id not in self._lists:
            self._lists[user_id] = self.reader.user_lists(version, user_id)
        return self._lists[user_id]

    def recent_events(self, tenant: str, user_id: int) -> list[bytes]:
        if (tenant, user_id) not in self._events:
            self._events[(tenant, user_id)] = self.reader.recent_events(tenant, user_id)
        return self._events[(tenant, user_id)]

    def model(self, version: Version) -> ModelArrays | None:
        return self.reader.model(version)

    def similar_lists(self, version: Version, number: int,
                      fields: Sequence[str]) -> list[bytes | None]:
        return self.reader.similar_lists(version, number, fields)


class UserList(NamedTuple):  # made on every request: a tuple is the cheapest immutable record
    ids: Sequence[int]  # Totara's numeric ids, best first
    scores: Sequence[float]
    source: Source


def _first(found: tuple[np.ndarray, np.ndarray], n_items: int) -> tuple[list, list]:
    ids, scores = found
    return ids[:n_items].tolist(), scores[:n_items].tolist()


def user_list(reader: ListReader, version: Version, user_id: int, type_code: int,
              n_items: int) -> UserList:
    """The first ``n_items`` entries of the user's list of ``type_code``, as Python numbers;
    without a (readable) published list: fold-in, else the popularity list."""
    blob = reader.user_lists(version, user_id)
    if blob is not None:
        try:
            return UserList(*packing.head(blob, type_code, n_items), Source.PUBLISHED)
        except CorruptListError as exc:  # answered as a user without a list is
            version.unreadable(f"the published lists of user {user_id}", exc)
    events = reader.recent_events(version.tenant, user_id)
    if events:
        model = reader.model(version)
        found = model.recommend(events, type_code, n_items) if model else None
        if found is not None:
            return UserList(*_first(found, n_items), Source.FOLD_IN)
    return UserList(*_first(version.popular_list(type_code), n_items), Source.POPULAR)


def similar_list(reader: ListReader, version: Version,
                 item_id: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The item's similar items, best first, never itself; None for an unknown item (or one
    whose list does not decode)."""
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
    try:
        ids, scores = packing.unpack(blob, 0)
    except CorruptListError as exc:
        version.unreadable(f"the similar items of {item_id}", exc)
        return None
    itself = ids == number
    if itself.any():  # the publisher never stores it; this keeps the promise regardless
        ids, scores = ids[~itself], scores[~itself]
    return ids, scores
