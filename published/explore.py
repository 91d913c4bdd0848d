"""What the operator's explorer reads, published beside the lists (docs/redis-keys.md).

Three kinds of values per version, written by recommender.publish.explore:

* a user's interactions (``keys.history_bucket``): ``HISTORY`` records, newest first, 9 bytes
  each; ``item`` is the row of the item in the version's ``model`` hash, so the explorer finds
  its type, id and embedding without a second key;
* an item's labels, first words and counts (``keys.item_info_bucket``, ``ItemInfo`` as JSON);
* the tenant's figures (``keys.figures``, ``Figures`` as JSON): P@10 over the last versions,
  list coverage and the most recommended items, computed once at publish time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import numpy as np
import redis

from published import keys

HISTORY = np.dtype([("item", "<u4"), ("time", "<u4"), ("rating", "u1")])
# Bounds what a user costs in Redis: the explorer shows their latest interactions only.
MAX_HISTORY = 200
MAX_LABELS = 20
TEXT_WORDS = 30
# "Near the top" of a list: its first entries, as Totara shows a handful of recommendations.
NEAR_TOP = 10
NEAR_TOP_USERS = 5
QUALITY_VERSIONS = 20
MOST_RECOMMENDED = 20


def records(items: np.ndarray, times: np.ndarray, ratings: np.ndarray) -> np.ndarray:
    """``HISTORY`` records of the arrays, times and ratings clipped to their fields; a user's
    value is their slice of it (``pack_history``), so a whole tenant is converted at once."""
    out = np.empty(len(items), HISTORY)
    out["item"] = items
    out["time"] = np.clip(times, 0, 2**32 - 1)
    out["rating"] = np.clip(ratings, 0, 255)
    return out


def pack_history(items: np.ndarray, times: np.ndarray, ratings: np.ndarray) -> bytes:
    """One user's value: records in the order given (newest first), at most ``MAX_HISTORY``."""
    return records(items[:MAX_HISTORY], times[:MAX_HISTORY], ratings[:MAX_HISTORY]).tobytes()


def unpack_history(blob: bytes) -> np.ndarray:
    """The records of a value; trailing bytes that do not make a whole record are ignored."""
    return np.frombuffer(blob, HISTORY, count=len(blob) // HISTORY.itemsize)


R = TypeVar("R")


def _encoded(record: object) -> bytes:
    return json.dumps(asdict(record), separators=(",", ":")).encode()


def _decoded(blob: bytes | None, build: Callable[[Any], R]) -> R | None:
    """``build`` applied to the JSON in ``blob``; None when it is absent or not what it should be
    (Redis may hold anything: a damaged record reads as a missing one)."""
    if blob is None:
        return None
    try:
        return build(json.loads(blob))
    except (ValueError, KeyError, TypeError):
        return None


@dataclass
class ItemInfo:
    labels: list[str]  # the export's topic_*/tag_* columns flagged for the item
    text: str  # the first TEXT_WORDS words of its document
    learners: int  # users with an interaction with it in the export
    near_top: int  # users with it in the first NEAR_TOP entries of their list of its type
    near_top_users: list[int] = field(default_factory=list)  # the first NEAR_TOP_USERS of them

    def to_bytes(self) -> bytes:
        return _encoded(self)

    @classmethod
    def from_bytes(cls, blob: bytes | None) -> ItemInfo | None:
        return _decoded(blob, lambda raw: cls(
            [str(x) for x in raw["labels"]], str(raw["text"]), int(raw["learners"]),
            int(raw["near_top"]), [int(x) for x in raw["near_top_users"]]))


@dataclass
class QualityPoint:
    version: str
    trained_at: float | None
    precision_at_10: float | None


@dataclass
class Figures:
    quality: list[QualityPoint]  # oldest first, this version last
    catalogue: list[int]  # items per type code
    covered: list[int]  # items per type code in anyone's first NEAR_TOP entries
    most_recommended: list[tuple[int, int, int]]  # (type code, id, users), most first

    @property
    def coverage(self) -> float:
        return sum(self.covered) / max(sum(self.catalogue), 1)

    def to_bytes(self) -> bytes:
        return _encoded(self)

    @classmethod
    def from_bytes(cls, blob: bytes | None) -> Figures | None:
        return _decoded(blob, lambda raw: cls(
            [QualityPoint(**point) for point in raw["quality"]],
            [int(n) for n in raw["catalogue"]], [int(n) for n in raw["covered"]],
            [(int(t), int(i), int(n)) for t, i, n in raw["most_recommended"]]))


def read_history(client: redis.Redis, tenant: str, version: str, user_id: int) -> np.ndarray | None:
    """The user's records, None when the version has none for them."""
    blob = client.hget(keys.history_bucket(tenant, version, user_id), str(user_id))
    return None if blob is None else unpack_history(blob)


def read_item(client: redis.Redis, tenant: str, version: str, number: int,
              item_key: str) -> ItemInfo | None:
    return ItemInfo.from_bytes(client.hget(keys.item_info_bucket(tenant, version, number),
                                           item_key))


def read_figures(client: redis.Redis, tenant: str, version: str) -> Figures | None:
    return Figures.from_bytes(client.get(keys.figures(tenant, version)))
