"""The three tables of a tenant's export: users, items and interactions.

Each table has its arrays (``Users``, ``Items``, ``Interactions``), a fast reader that checks a
pyarrow table with vectorised functions and raises ``csvfile.Fallback`` on anything wrong, and a
row check that the slow pass runs record by record to name the first problem exactly. Reading
the files, their headers and the whole export is recommender.ingest.export's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from recommender.ingest import csvfile
from recommender.ingest.csvfile import Fallback, RowCheck, is_whole, require
from runtime.errors import capped, quoted
from runtime.items import ITEM_TYPES, parse_item_key

# One-hot columns of user_data (contract §5) and the free-text ones.
USER_MULTI_COLUMNS = ("interests", "asp_position", "positions", "organisations", "badges")
USER_TEXT_COLUMNS = ("lang", "city", "country", "description")

USER_COLUMNS = ("user_id", "lang", "city", "country", "interests", "asp_position", "positions",
                "organisations", "competencies_scale", "badges", "description")
INTERACTION_COLUMNS = ("user_id", "item_id", "rating", "timestamp")

MAX_TIME = 10**11  # seconds; anything larger is surely milliseconds or garbage
_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_NUMBER_RE = re.compile(_NUMBER)
_ITEM_KEY = r"^(?P<type>" + "|".join(ITEM_TYPES) + r")(?P<number>[0-9]{1,10})$"


@dataclass
class Users:
    ids: np.ndarray  # int64 Totara user ids, unique, in file order; row i is user i
    text: dict[str, list[str]]  # USER_TEXT_COLUMNS -> one string per user
    multi: dict[str, list[list[str]]]  # USER_MULTI_COLUMNS -> tokens per user ("" dropped)
    competencies: list[list[tuple[str, float]]]  # (competency id, proficiency) per user

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Items:
    keys: list[str]  # "engage_article12", in file order; row i is item i
    types: np.ndarray  # uint8 type code (runtime.items.TYPE_CODE)
    numbers: np.ndarray  # uint32 numeric Totara id (prefix removed)
    tag_names: list[str]  # the topic_*/tag_* column names, in file order
    tags: sp.csr_matrix  # n_items x n_tags, 1.0 where the flag is 1
    documents: list[str]

    def __len__(self) -> int:
        return len(self.keys)


@dataclass
class Interactions:
    """One row per (user, item): the latest row of the file for that pair."""

    users: np.ndarray  # int32 row index into Users
    items: np.ndarray  # int32 row index into Items
    ratings: np.ndarray  # int8, 0 or 1
    timestamps: np.ndarray  # int64 unix seconds

    def __len__(self) -> int:
        return len(self.users)


# --------------------------------------------------------------------------- users


def user_row_check() -> RowCheck:
    seen: set[int] = set()

    def check(row: list[str]) -> str | None:
        uid = row[0]
        if not is_whole(uid):
            return f"user_id {quoted(uid)} is not a whole number"
        if int(uid) in seen:
            return f"duplicate user_id {uid.strip()}"
        seen.add(int(uid))
        for pair in filter(None, row[USER_COLUMNS.index("competencies_scale")].split("|")):
            problem = _competency_problem(pair)
            if problem:
                return problem
        return None

    return check


def _competency_problem(pair: str) -> str | None:
    parts = pair.split(":")
    if len(parts) != 2 or parts[0] == "":
        return f"competencies_scale entry {quoted(pair)} is not competencyid:proficiency"
    if not _NUMBER_RE.fullmatch(parts[1]):
        return f"competencies_scale entry {quoted(pair)}: proficiency is not a number"
    return None


def users_fast(table: pa.Table) -> Users:
    n = table.num_rows
    ids = csvfile.whole_numbers(table["user_id"])
    if len(np.unique(ids)) != len(ids):
        raise Fallback
    multi = {}
    for column in USER_MULTI_COLUMNS:
        owners, tokens = csvfile.split_tokens(table[column], "|")
        multi[column] = csvfile.group_rows(n, owners, tokens.to_pylist())
    owners, pairs = csvfile.split_tokens(table["competencies_scale"], "|")
    parts = pc.split_pattern(pairs, ":")
    require(pc.equal(pc.list_value_length(parts), 2))
    comp_ids = pc.list_element(parts, 0)
    levels = pc.list_element(parts, 1)
    require(pc.not_equal(comp_ids, ""))
    require(pc.match_substring_regex(levels, _NUMBER))
    competencies = list(zip(comp_ids.to_pylist(),
                            pc.cast(levels, pa.float64()).to_numpy().tolist(), strict=True))
    return Users(ids=ids.astype(np.int64),
                 text={c: table[c].to_pylist() for c in USER_TEXT_COLUMNS},
                 multi=multi, competencies=csvfile.group_rows(n, owners, competencies))


# --------------------------------------------------------------------------- items


def _parse_key(key: str) -> tuple[int, int] | None:
    # parse_item_key's "$" also matches before a final line end; a key never holds one.
    return None if "\n" in key else parse_item_key(key)


def item_row_check(header: list[str]) -> RowCheck:
    seen: set[str] = set()
    flag_columns = header[1:-1]

    def check(row: list[str]) -> str | None:
        key = row[0]
        parsed = _parse_key(key)
        if parsed is None:
            return (f"item_id {quoted(key)} does not start with a Totara item type and end "
                    "with an id")
        if key in seen:
            return f"duplicate item_id {key}"
        seen.add(key)
        flags = row[1:-1]
        for column, flag in zip(flag_columns, flags, strict=True):
            if flag not in ("0", "1"):
                return f"{capped(column)} flag {quoted(flag)} is not 0 or 1"
        types = [i for i, flag in enumerate(flags[:len(ITEM_TYPES)]) if flag == "1"]
        if types != [parsed[0]]:
            marked = ",".join(ITEM_TYPES[i] for i in types) or "none"
            return f"item type flags ({marked}) disagree with item_id {quoted(key)}"
        return None

    return check


def items_fast(table: pa.Table, tag_names: list[str]) -> Items:
    keys = table["item_id"]
    parsed = pc.extract_regex(keys.combine_chunks(), _ITEM_KEY)
    require(pc.is_valid(parsed))
    numbers = pc.cast(parsed.field("number"), pa.uint64()).to_numpy()
    if len(numbers) and numbers.max() >= 2**32:
        raise Fallback
    types = pc.index_in(parsed.field("type"), value_set=pa.array(ITEM_TYPES)).to_numpy()
    flags = np.column_stack([csvfile.flags(table[t]) for t in ITEM_TYPES]) if len(types) else None
    if flags is not None:
        if not (flags.sum(axis=1) == 1).all() or not (flags.argmax(axis=1) == types).all():
            raise Fallback
    key_list = keys.to_pylist()
    if len(set(key_list)) != len(key_list):
        raise Fallback
    n = table.num_rows
    rows, cols = [], []
    for j, tag in enumerate(tag_names):
        hit = np.flatnonzero(csvfile.flags(table[tag]))
        rows.append(hit)
        cols.append(np.full(len(hit), j))
    row_idx = np.concatenate(rows) if rows else np.empty(0, np.int64)
    col_idx = np.concatenate(cols) if cols else np.empty(0, np.int64)
    tags = sp.csr_matrix((np.ones(len(row_idx)), (row_idx, col_idx)), shape=(n, len(tag_names)))
    return Items(keys=key_list, types=types.astype(np.uint8), numbers=numbers.astype(np.uint32),
                 tag_names=list(tag_names), tags=tags, documents=table["document"].to_pylist())


# --------------------------------------------------------------------------- interactions


def interaction_row_check(users_name: str, items_name: str, user_ids: set[int],
                           item_keys: set[str]) -> RowCheck:
    def check(row: list[str]) -> str | None:
        uid, key, rating, stamp = row
        if not is_whole(uid):
            return f"user_id {quoted(uid)} is not a whole number"
        if _parse_key(key) is None:
            return (f"item_id {quoted(key)} does not start with a Totara item type and end "
                    "with an id")
        if not is_whole(rating) or int(rating) > 1:
            return f"rating {quoted(rating)} is not 0 or 1"
        if not is_whole(stamp) or int(stamp) >= MAX_TIME:
            return f"timestamp {quoted(stamp)} is not a whole number of seconds"
        if int(uid) not in user_ids:
            return f"user_id {uid.strip(csvfile.SPACES)} is not in {users_name}"
        if key not in item_keys:
            return f"item_id {key} is not in {items_name}"
        return None

    return check


# Numbers parsed by pyarrow directly: much faster than strings, and it rejects signs other than
# "-", exponents and fractions itself; negative values are caught below.
INTERACTION_TYPES = {"user_id": pa.int64(), "rating": pa.int8(), "timestamp": pa.int64()}


def interactions_fast(table: pa.Table, users: Users, items: Items) -> Interactions:
    if table.num_rows == 0:
        empty = np.empty(0, np.int32)
        return Interactions(empty, empty, empty.astype(np.int8), empty.astype(np.int64))
    if any(table[c].null_count for c in INTERACTION_TYPES):
        raise Fallback  # an empty field
    user_ids = table["user_id"].to_numpy()
    stamps = table["timestamp"].to_numpy()
    ratings = table["rating"].to_numpy()
    if (user_ids.min() < 0 or stamps.min() < 0 or stamps.max() >= MAX_TIME
            or not ((ratings == 0) | (ratings == 1)).all()):
        raise Fallback
    user_rows = pc.index_in(user_ids, value_set=pa.array(users.ids))
    item_rows = pc.index_in(table["item_id"], value_set=pa.array(items.keys, pa.string()))
    if user_rows.null_count or item_rows.null_count:
        raise Fallback
    return dedupe_latest(user_rows.to_numpy().astype(np.int32),
                         item_rows.to_numpy().astype(np.int32), ratings, stamps, len(items))


def dedupe_latest(users: np.ndarray, items: np.ndarray, ratings: np.ndarray,
                  timestamps: np.ndarray, n_items: int) -> Interactions:
    """Keep the latest row per (user, item), the later row on equal times; sorted by pair."""
    pair = users.astype(np.int64) * max(n_items, 1) + items
    # A stable sort keeps file order within a pair, and is near linear on Totara's files, which
    # list interactions user by user.
    order = np.argsort(pair, kind="stable")
    sorted_pair = pair[order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = sorted_pair[1:] != sorted_pair[:-1]
    if first.all():
        keep = order
    else:
        starts = np.flatnonzero(first)
        stamps = timestamps[order].astype(np.int64)
        stamps -= stamps.min()
        # The newest row of a pair is the greatest (time, position in sorted order); positions
        # follow file order within a pair. Both fit one int64 for any real export, so a single
        # reduceat finds it.
        shift = max(int(len(order)).bit_length(), 1)
        if int(stamps.max()).bit_length() + shift < 63:
            best = np.maximum.reduceat((stamps << shift) | np.arange(len(order)), starts)
            keep = order[best & ((1 << shift) - 1)]
        else:
            newest = np.repeat(np.maximum.reduceat(stamps, starts), np.diff(np.r_[starts,
                                                                                  len(order)]))
            position = np.where(stamps == newest, np.arange(len(order)), -1)
            keep = order[np.maximum.reduceat(position, starts)]
    return Interactions(users=users[keep].astype(np.int32), items=items[keep].astype(np.int32),
                        ratings=ratings[keep].astype(np.int8),
                        timestamps=timestamps[keep].astype(np.int64))
