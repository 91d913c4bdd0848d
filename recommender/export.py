"""Read and validate a Totara export folder (contract §4) into arrays.

Each file is read twice only when it is bad: a fast pass (pyarrow.csv and vectorised checks)
accepts good files, and any failure there re-reads the file row by row with Python's csv module,
whose record positions give the exact physical line of the first problem even when quoted fields
span lines. So messages are exact and good files never pay for the slow pass.

Files are what PHP's fputcsv writes: comma, ``"`` quoting (doubled inside), ``\\n`` line ends.
A UTF-8 byte-order mark and ``\\r\\n`` line ends are accepted; blank lines are skipped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import scipy.sparse as sp

from recommender.items import ITEM_TYPES, parse_item_key

# One-hot columns of user_data (contract §5) and the free-text ones.
USER_MULTI_COLUMNS = ("interests", "asp_position", "positions", "organisations", "badges")
USER_TEXT_COLUMNS = ("lang", "city", "country", "description")

USER_COLUMNS = ("user_id", "lang", "city", "country", "interests", "asp_position", "positions",
                "organisations", "competencies_scale", "badges", "description")
INTERACTION_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
TENANTS_FILE = "tenants.csv"

# Bounds that keep ids inside int64 and timestamps plausible (seconds, not milliseconds).
_MAX_ID_DIGITS = 18
_MAX_TIME_DIGITS = 11
_NUMBER = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_NUMBER_RE = re.compile(_NUMBER)
_ITEM_KEY = (r"^(?P<type>" + "|".join(ITEM_TYPES) + r")(?P<number>[0-9]{1,10})$")
_BOM = b"\xef\xbb\xbf"


def users_file(tenant: str) -> str:
    return f"user_data_{tenant}.csv"


def items_file(tenant: str) -> str:
    return f"item_data_{tenant}.csv"


def interactions_file(tenant: str) -> str:
    return f"user_interactions_{tenant}.csv"


class ExportError(Exception):
    """A malformed export file; the message names the file, the line and the problem."""


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
    types: np.ndarray  # uint8 type code (recommender.items.TYPE_CODE)
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


@dataclass
class TenantExport:
    tenant: str
    users: Users
    items: Items
    interactions: Interactions
    fingerprint: str = ""  # sha256 over the tenant's three files
    stats: dict[str, float] = field(default_factory=dict)  # rows read, seconds per file


class _Fallback(Exception):
    """The fast pass found something wrong; the slow pass finds out what and where."""


# --------------------------------------------------------------------------- raw bytes, header


def _read(directory: Path, name: str) -> bytes:
    try:
        return (directory / name).read_bytes()
    except FileNotFoundError:
        raise ExportError(f"{name}: the file is missing") from None
    except OSError as exc:
        raise ExportError(f"{name}: the file cannot be read ({exc.strerror})") from None


def _check_bytes(name: str, data: bytes) -> None:
    """Problems that make the whole file unreadable: emptiness, encoding, truncation."""
    if data in (b"", _BOM):
        raise ExportError(f"{name} line 1: the file is empty (expected a header line)")
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise ExportError(f"{name} line {line}: not UTF-8 (byte 0x{data[exc.start]:02x} "
                              f"at offset {exc.start})") from None
    # fputcsv ends every record with a line end, so a file without one was cut short.
    if not data.endswith(b"\n"):
        line = data.count(b"\n") + 1
        raise ExportError(f"{name} line {line}: the file is truncated (the last line has no "
                          "line end)")


def _text(data: bytes) -> str:
    return data.decode("utf-8").removeprefix("\ufeff")


def _header(name: str, data: bytes) -> list[str]:
    first = _text(data[:data.index(b"\n") + 1])
    try:
        return next(csv.reader([first], strict=True))
    except (csv.Error, StopIteration):
        raise ExportError(f"{name} line 1: the header line is not valid CSV") from None


def _check_fixed_header(name: str, header: list[str], expected: tuple[str, ...]) -> None:
    if tuple(header) == expected:
        return
    for column in expected:
        if column not in header:
            raise ExportError(f"{name} line 1: missing column '{column}'")
    extra = [c for c in header if c not in expected]
    if extra:
        raise ExportError(f"{name} line 1: unexpected column '{extra[0]}'")
    if len(header) != len(set(header)):
        dup = next(c for c in header if header.count(c) > 1)
        raise ExportError(f"{name} line 1: column '{dup}' appears twice")
    raise ExportError(f"{name} line 1: columns out of order, expected {','.join(expected)}")


def _check_item_header(name: str, header: list[str]) -> list[str]:
    """item_id, the five type columns in order, topic_*/tag_* columns, document; the tags."""
    fixed_head = ("item_id", *ITEM_TYPES)
    for column in (*fixed_head, "document"):
        if column not in header:
            raise ExportError(f"{name} line 1: missing column '{column}'")
    if tuple(header[:len(fixed_head)]) != fixed_head or header[-1] != "document":
        raise ExportError(f"{name} line 1: columns out of order, expected "
                          f"{','.join(fixed_head)},<topic_*/tag_* columns>,document")
    tags = header[len(fixed_head):-1]
    seen: set[str] = set()
    for tag in tags:
        if not tag.startswith(("topic_", "tag_")):
            raise ExportError(f"{name} line 1: unexpected column '{tag}' (topic and tag columns "
                              "start with topic_ or tag_)")
        if tag in seen:
            raise ExportError(f"{name} line 1: column '{tag}' appears twice")
        seen.add(tag)
    return tags


# --------------------------------------------------------------------------- slow pass


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """CSV records with the physical line each starts on (the header is line 1)."""
    # newline="\n": a physical line is what ends in \n, as counted in the messages.
    reader = csv.reader(io.StringIO(text, newline="\n"), strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise _RowProblem(start, "unterminated quote (the quoted field starting here "
                                  "never ends)") from None
            raise _RowProblem(start, f"broken quoting ({exc})") from None
        yield start, row
        start = reader.line_num + 1


class _RowProblem(Exception):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line, self.problem = line, problem


RowCheck = Callable[[list[str]], "str | None"]


def _slow_check(name: str, data: bytes, n_columns: int, check: RowCheck, why: str) -> None:
    """Walk the file record by record and raise ExportError for the first bad one."""
    limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)  # long documents are fine; pyarrow has no limit either
    try:
        for line, row in _records(_text(data)):
            if line == 1 or not row:
                continue
            if len(row) != n_columns:
                raise _RowProblem(line, f"{len(row)} fields, expected {n_columns}")
            problem = check(row)
            if problem is not None:
                raise _RowProblem(line, problem)
    except _RowProblem as exc:
        raise ExportError(f"{name} line {exc.line}: {exc.problem}") from None
    finally:
        csv.field_size_limit(limit)
    # The fast pass disagreed with no row: say what it saw rather than nothing.
    raise ExportError(f"{name}: could not be read ({why})")


def _whole(value: str, digits: int = _MAX_ID_DIGITS) -> bool:
    # Spaces around a number are tolerated because pyarrow's integer columns tolerate them.
    value = value.strip(" \t")
    return value.isascii() and value.isdigit() and len(value) <= digits


# --------------------------------------------------------------------------- fast pass helpers


def _read_table(data: bytes, names: list[str], quoted_newlines: bool,
                types: dict[str, pa.DataType] | None = None) -> pa.Table:
    """Columns as non-null strings unless ``types`` says otherwise; pyarrow skips a BOM itself."""
    return pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(use_threads=True, block_size=8 << 20),
        parse_options=pacsv.ParseOptions(newlines_in_values=quoted_newlines),
        convert_options=pacsv.ConvertOptions(
            column_types={n: (types or {}).get(n, pa.string()) for n in names},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False, check_utf8=False))


def _require(mask: pa.ChunkedArray | pa.Array) -> None:
    if not pc.all(mask, min_count=0).as_py():
        raise _Fallback


def _whole_numbers(column: pa.ChunkedArray, digits: int = _MAX_ID_DIGITS) -> np.ndarray:
    _require(pc.ascii_is_decimal(column))
    _require(pc.less_equal(pc.binary_length(column), digits))
    return pc.cast(column, pa.int64()).to_numpy()


def _flags(column: pa.ChunkedArray) -> np.ndarray:
    ones = pc.equal(column, "1")
    _require(pc.or_(ones, pc.equal(column, "0")))
    return ones.to_numpy()


def _unique(values: np.ndarray) -> bool:
    return len(np.unique(values)) == len(values)


def _split(column: pa.ChunkedArray, sep: str) -> tuple[np.ndarray, pa.Array]:
    """Split every cell on ``sep`` and drop empty tokens: (owner row per token, tokens)."""
    lists = pc.split_pattern(column.combine_chunks(), sep)
    owners = pc.list_parent_indices(lists).to_numpy()
    tokens = pc.list_flatten(lists)
    keep = pc.not_equal(tokens, "")
    return owners[keep.to_numpy(zero_copy_only=False)], tokens.filter(keep)


def _group(n: int, owners: np.ndarray, values: list) -> list[list]:
    """Python lists per row from (owner, value) pairs, owners ascending."""
    bounds = np.searchsorted(owners, np.arange(n + 1)).tolist()
    return [values[bounds[i]:bounds[i + 1]] for i in range(n)]


# --------------------------------------------------------------------------- users


def _user_row_check() -> RowCheck:
    seen: dict[str, int] = {}

    def check(row: list[str]) -> str | None:
        uid = row[0]
        if not _whole(uid):
            return f"user_id '{uid}' is not a whole number"
        if uid in seen:
            return f"duplicate user_id {uid}"
        seen[uid] = 1
        for pair in filter(None, row[USER_COLUMNS.index("competencies_scale")].split("|")):
            problem = _competency_problem(pair)
            if problem:
                return problem
        return None

    return check


def _competency_problem(pair: str) -> str | None:
    parts = pair.split(":")
    if len(parts) != 2 or parts[0] == "":
        return f"competencies_scale entry '{pair}' is not competencyid:proficiency"
    if not _NUMBER_RE.match(parts[1]):
        return f"competencies_scale entry '{pair}': proficiency is not a number"
    return None


def _users_fast(table: pa.Table) -> Users:
    n = table.num_rows
    ids = _whole_numbers(table["user_id"])
    if not _unique(ids):
        raise _Fallback
    multi = {}
    for column in USER_MULTI_COLUMNS:
        owners, tokens = _split(table[column], "|")
        multi[column] = _group(n, owners, tokens.to_pylist())
    owners, pairs = _split(table["competencies_scale"], "|")
    parts = pc.split_pattern(pairs, ":")
    _require(pc.equal(pc.list_value_length(parts), 2))
    comp_ids = pc.list_element(parts, 0)
    levels = pc.list_element(parts, 1)
    _require(pc.not_equal(comp_ids, ""))
    _require(pc.match_substring_regex(levels, _NUMBER))
    competencies = list(zip(comp_ids.to_pylist(),
                            pc.cast(levels, pa.float64()).to_numpy().tolist(), strict=True))
    return Users(ids=ids.astype(np.int64),
                 text={c: table[c].to_pylist() for c in USER_TEXT_COLUMNS},
                 multi=multi, competencies=_group(n, owners, competencies))


# --------------------------------------------------------------------------- items


def _parse_key(key: str) -> tuple[int, int] | None:
    # parse_item_key's "$" also matches before a final line end; a key never holds one.
    return None if "\n" in key else parse_item_key(key)


def _item_row_check(header: list[str]) -> RowCheck:
    seen: set[str] = set()
    flag_columns = header[1:-1]

    def check(row: list[str]) -> str | None:
        key = row[0]
        parsed = _parse_key(key)
        if parsed is None:
            return f"item_id '{key}' does not start with a Totara item type and end with an id"
        if key in seen:
            return f"duplicate item_id {key}"
        seen.add(key)
        flags = row[1:-1]
        for column, flag in zip(flag_columns, flags, strict=True):
            if flag not in ("0", "1"):
                return f"{column} flag '{flag}' is not 0 or 1"
        types = [i for i, flag in enumerate(flags[:len(ITEM_TYPES)]) if flag == "1"]
        if types != [parsed[0]]:
            marked = ",".join(ITEM_TYPES[i] for i in types) or "none"
            return f"item type flags ({marked}) disagree with item_id '{key}'"
        return None

    return check


def _items_fast(table: pa.Table, tag_names: list[str]) -> Items:
    keys = table["item_id"]
    parsed = pc.extract_regex(keys.combine_chunks(), _ITEM_KEY)
    _require(pc.is_valid(parsed))
    numbers = pc.cast(parsed.field("number"), pa.uint64()).to_numpy()
    if len(numbers) and numbers.max() >= 2**32:
        raise _Fallback
    types = pc.index_in(parsed.field("type"), value_set=pa.array(ITEM_TYPES)).to_numpy()
    flags = np.column_stack([_flags(table[t]) for t in ITEM_TYPES]) if len(types) else None
    if flags is not None:
        if not (flags.sum(axis=1) == 1).all() or not (flags.argmax(axis=1) == types).all():
            raise _Fallback
    key_list = keys.to_pylist()
    if len(set(key_list)) != len(key_list):
        raise _Fallback
    n = table.num_rows
    rows, cols = [], []
    for j, tag in enumerate(tag_names):
        hit = np.flatnonzero(_flags(table[tag]))
        rows.append(hit)
        cols.append(np.full(len(hit), j))
    row_idx = np.concatenate(rows) if rows else np.empty(0, np.int64)
    col_idx = np.concatenate(cols) if cols else np.empty(0, np.int64)
    tags = sp.csr_matrix((np.ones(len(row_idx)), (row_idx, col_idx)), shape=(n, len(tag_names)))
    return Items(keys=key_list, types=types.astype(np.uint8), numbers=numbers.astype(np.uint32),
                 tag_names=list(tag_names), tags=tags, documents=table["document"].to_pylist())


# --------------------------------------------------------------------------- interactions


def _interaction_row_check(users_name: str, items_name: str, user_ids: set[str],
                           item_keys: set[str]) -> RowCheck:
    def check(row: list[str]) -> str | None:
        uid, key, rating, stamp = row
        if not _whole(uid):
            return f"user_id '{uid}' is not a whole number"
        if _parse_key(key) is None:
            return f"item_id '{key}' does not start with a Totara item type and end with an id"
        if rating not in ("0", "1"):
            return f"rating '{rating}' is not 0 or 1"
        if not _whole(stamp, _MAX_TIME_DIGITS):
            return f"timestamp '{stamp}' is not a whole number of seconds"
        if str(int(uid.strip(" \t"))) not in user_ids:
            return f"user_id {uid} is not in {users_name}"
        if key not in item_keys:
            return f"item_id {key} is not in {items_name}"
        return None

    return check


# Numbers parsed by pyarrow directly: much faster than strings, and it rejects signs other than
# "-", exponents and fractions itself; negative values are caught below.
_INTERACTION_TYPES = {"user_id": pa.int64(), "rating": pa.int8(), "timestamp": pa.int64()}


def _interactions_fast(table: pa.Table, users: Users, items: Items) -> Interactions:
    if table.num_rows == 0:
        empty = np.empty(0, np.int32)
        return Interactions(empty, empty, empty.astype(np.int8), empty.astype(np.int64))
    if any(table[c].null_count for c in _INTERACTION_TYPES):
        raise _Fallback  # an empty field
    user_ids = table["user_id"].to_numpy()
    stamps = table["timestamp"].to_numpy()
    ratings = table["rating"].to_numpy()
    if (user_ids.min() < 0 or stamps.min() < 0 or stamps.max() >= 10**_MAX_TIME_DIGITS
            or not ((ratings == 0) | (ratings == 1)).all()):
        raise _Fallback
    user_rows = pc.index_in(user_ids, value_set=pa.array(users.ids))
    item_rows = pc.index_in(table["item_id"], value_set=pa.array(items.keys, pa.string()))
    if user_rows.null_count or item_rows.null_count:
        raise _Fallback
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


# --------------------------------------------------------------------------- public API


def read_tenants(directory: Path) -> list[str]:
    """Tenant ids of tenants.csv in file order without repeats; no file means ["0"] (a 204)."""
    path = directory / TENANTS_FILE
    if not path.exists():
        return ["0"]
    data = _read(directory, TENANTS_FILE)
    _check_bytes(TENANTS_FILE, data)
    tenants: list[str] = []
    try:
        for line, row in _records(_text(data)):
            if line == 1:
                if row != ["tenants"]:
                    raise _RowProblem(1, "missing column 'tenants'")
                continue
            if not row:
                continue
            if len(row) != 1:
                raise _RowProblem(line, f"{len(row)} fields, expected 1")
            if not _whole(row[0]):
                raise _RowProblem(line, f"tenant '{row[0]}' is not a whole number")
            tenant = str(int(row[0]))
            if tenant not in tenants:
                tenants.append(tenant)
    except _RowProblem as exc:
        raise ExportError(f"{TENANTS_FILE} line {exc.line}: {exc.problem}") from None
    return tenants


def load_tenant(directory: Path, tenant: str) -> TenantExport:
    """Parse and check one tenant's three files; ExportError names the first problem."""
    stats: dict[str, float] = {}
    digest = hashlib.sha256()

    def load(name: str, header_check: Callable[[list[str]], object],
             fast: Callable[[pa.Table], object], check: Callable[[], RowCheck],
             quoted_newlines: bool = True, types: dict | None = None) -> object:
        start = time.perf_counter()
        data = _read(directory, name)
        # Name and length go in the digest too, so moving bytes between files changes it.
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
        _check_bytes(name, data)
        header = _header(name, data)
        header_check(header)
        try:
            # pyarrow takes a quote left open at the end of the file as ending there; an odd
            # number of quote characters can only come from broken quoting.
            if data.count(b'"') % 2:
                raise _Fallback
            table = _read_table(data, header, quoted_newlines, types)
            result = fast(table)
        except (_Fallback, pa.ArrowInvalid) as exc:
            _slow_check(name, data, len(header), check(), str(exc) or "a value failed a check")
        stem = name.rsplit("_", 1)[0]
        stats[f"{stem}_rows"] = float(table.num_rows)
        stats[f"{stem}_seconds"] = time.perf_counter() - start
        return result

    u_name, i_name, x_name = users_file(tenant), items_file(tenant), interactions_file(tenant)
    users = load(u_name, lambda h: _check_fixed_header(u_name, h, USER_COLUMNS),
                 _users_fast, _user_row_check)
    item_header: list[str] = []

    def item_header_check(header: list[str]) -> None:
        _check_item_header(i_name, header)
        item_header.extend(header)

    items = load(i_name, item_header_check, lambda t: _items_fast(t, item_header[6:-1]),
                 lambda: _item_row_check(item_header))
    assert isinstance(users, Users) and isinstance(items, Items)
    # Interactions hold only numbers and item keys: a quoted line end there is an error anyway,
    # and without them pyarrow can split the file into blocks and parse them in parallel.
    interactions = load(
        x_name, lambda h: _check_fixed_header(x_name, h, INTERACTION_COLUMNS),
        lambda t: _interactions_fast(t, users, items),
        lambda: _interaction_row_check(u_name, i_name, {str(u) for u in users.ids.tolist()},
                                       set(items.keys)),
        quoted_newlines=False, types=_INTERACTION_TYPES)
    assert isinstance(interactions, Interactions)
    stats["interactions_kept"] = float(len(interactions))
    return TenantExport(tenant=tenant, users=users, items=items, interactions=interactions,
                        fingerprint=digest.hexdigest(), stats=stats)
