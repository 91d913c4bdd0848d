"""Read and validate a Totara export folder (contract §4) into arrays.

Files are what PHP's fputcsv writes: comma, ``"`` quoting (doubled inside), ``\\n`` line ends.
A UTF-8 byte-order mark and ``\\r\\n`` line ends are accepted, blank lines skipped, and spaces
around numbers tolerated. Good files are read by pyarrow and checked with vectorised functions;
a bad one is re-read row by row to name its first problem exactly (recommender.ingest.csvfile).
The tables and their checks are recommender.ingest.tables'; this module reads the files, checks
their headers and assembles the whole export with its fingerprint.
Every problem raises ExportError with one line: ``<file> line <n>: <problem>``.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from recommender.ingest import csvfile, tables
from recommender.ingest.csvfile import Fallback, RowCheck, RowProblem, is_whole
from recommender.ingest.tables import INTERACTION_COLUMNS, USER_COLUMNS, Interactions, Items, Users
from runtime.errors import BadFile, ExportError, quoted
from runtime.items import ITEM_TYPES

TENANTS_FILE = "tenants.csv"


def users_file(tenant: str) -> str:
    return f"user_data_{tenant}.csv"


def items_file(tenant: str) -> str:
    return f"item_data_{tenant}.csv"


def interactions_file(tenant: str) -> str:
    return f"user_interactions_{tenant}.csv"


@dataclass
class TenantExport:
    tenant: str
    users: Users
    items: Items
    interactions: Interactions
    fingerprint: str = ""  # sha256 over the tenant's three files
    stats: dict[str, float] = field(default_factory=dict)  # rows read, seconds per file


# --------------------------------------------------------------------------- headers


def _check_fixed_header(name: str, header: list[str], expected: tuple[str, ...]) -> None:
    if tuple(header) == expected:
        return
    for column in expected:
        if column not in header:
            raise ExportError(f"{name} line 1: missing column {quoted(column)}")
    extra = [c for c in header if c not in expected]
    if extra:
        raise ExportError(f"{name} line 1: unexpected column {quoted(extra[0])}")
    if len(header) != len(set(header)):
        twice = next(c for c in header if header.count(c) > 1)
        raise ExportError(f"{name} line 1: column {quoted(twice)} appears twice")
    raise ExportError(f"{name} line 1: columns out of order, expected {','.join(expected)}")


def _check_item_header(name: str, header: list[str]) -> None:
    """item_id, the five type columns in order, topic_*/tag_* columns, then document."""
    head = ("item_id", *ITEM_TYPES)
    for column in (*head, "document"):
        if column not in header:
            raise ExportError(f"{name} line 1: missing column {quoted(column)}")
    if tuple(header[:len(head)]) != head or header[-1] != "document":
        raise ExportError(f"{name} line 1: columns out of order, expected "
                          f"{','.join(head)},<topic_* and tag_* columns>,document")
    seen: set[str] = set()
    for tag in header[len(head):-1]:
        if not tag.startswith(("topic_", "tag_")):
            raise ExportError(f"{name} line 1: unexpected column {quoted(tag)} (topic and tag "
                              "columns start with topic_ or tag_)")
        if tag in seen:
            raise ExportError(f"{name} line 1: column {quoted(tag)} appears twice")
        seen.add(tag)



# --------------------------------------------------------------------------- public API


def _check_tenant(tenant: str) -> None:
    # The tenant becomes part of file names: only Totara's whole numbers may get there.
    if not (tenant.isascii() and tenant.isdigit()):
        raise ExportError(f"tenant {quoted(tenant)} is not a whole number")


def read_tenants(directory: Path) -> list[str]:
    """Tenant ids of tenants.csv in file order without repeats; no file means ["0"] (a 204)."""
    if not (directory / TENANTS_FILE).exists():
        return ["0"]
    tenants: list[str] = []
    try:
        data = csvfile.read_file(directory, TENANTS_FILE)
        csvfile.check_bytes(TENANTS_FILE, data)
        for line, row in csvfile.records(csvfile.text(data)):
            if line == 1:
                if row != ["tenants"]:
                    raise RowProblem(1, "missing column 'tenants'")
                continue
            if not row:
                continue
            if len(row) != 1:
                raise RowProblem(line, f"{len(row)} fields, expected 1")
            if not is_whole(row[0]):
                raise RowProblem(line, f"tenant {quoted(row[0])} is not a whole number")
            tenant = str(int(row[0]))
            if tenant not in tenants:
                tenants.append(tenant)
    except RowProblem as exc:
        raise ExportError(f"{TENANTS_FILE} line {exc.line}: {exc.problem}") from None
    except BadFile as exc:
        raise ExportError(str(exc)) from None
    return tenants


def load_tenant(directory: Path, tenant: str) -> TenantExport:
    """Parse and check one tenant's three files; ExportError names the first problem."""
    _check_tenant(tenant)
    try:
        return _load(directory, tenant)
    except BadFile as exc:
        raise ExportError(str(exc)) from None


@dataclass
class _Reading:
    """One tenant's files as they are read: the digest of their bytes (the export's
    fingerprint) and rows and seconds per file."""

    directory: Path
    digest: hashlib._Hash = field(default_factory=hashlib.sha256)
    stats: dict[str, float] = field(default_factory=dict)

    def table(self, name: str, header_check: Callable[[list[str]], None],
              fast: Callable[[pa.Table], object], check: Callable[[], RowCheck],
              quoted_newlines: bool = True, types: dict | None = None) -> object:
        """``fast``'s reading of the file, or the slow pass's ExportError naming its problem."""
        start = time.perf_counter()
        data = csvfile.read_file(self.directory, name)
        # Name and length go in the digest too, so moving bytes between files changes it.
        self.digest.update(f"{name}\0{len(data)}\0".encode())
        self.digest.update(data)
        csvfile.check_bytes(name, data)
        header = csvfile.header(name, data)
        header_check(header)
        try:
            table = csvfile.read_table(name, data, header, quoted_newlines, types)
            result = fast(table)
        except (Fallback, pa.ArrowInvalid) as exc:
            csvfile.slow_check(name, data, len(header), check(),
                               str(exc) or "a value failed a check")
        stem = name.rsplit("_", 1)[0]
        self.stats[f"{stem}_rows"] = float(table.num_rows)
        self.stats[f"{stem}_seconds"] = time.perf_counter() - start
        return result


def _load(directory: Path, tenant: str) -> TenantExport:
    reading = _Reading(directory)
    u_name, i_name, x_name = users_file(tenant), items_file(tenant), interactions_file(tenant)
    users = reading.table(u_name, lambda h: _check_fixed_header(u_name, h, USER_COLUMNS),
                          tables.users_fast, tables.user_row_check)
    item_header: list[str] = []

    def item_header_check(header: list[str]) -> None:
        _check_item_header(i_name, header)
        item_header.extend(header)

    items = reading.table(i_name, item_header_check,
                          lambda t: tables.items_fast(t, item_header[1 + len(ITEM_TYPES):-1]),
                          lambda: tables.item_row_check(item_header))
    assert isinstance(users, Users) and isinstance(items, Items)
    # Interactions hold only numbers and item keys: a quoted line end there is an error anyway,
    # and without them pyarrow can split the file into blocks and parse them in parallel.
    interactions = reading.table(
        x_name, lambda h: _check_fixed_header(x_name, h, INTERACTION_COLUMNS),
        lambda t: tables.interactions_fast(t, users, items),
        lambda: tables.interaction_row_check(u_name, i_name, set(users.ids.tolist()),
                                             set(items.keys)),
        quoted_newlines=False, types=tables.INTERACTION_TYPES)
    assert isinstance(interactions, Interactions)
    reading.stats["interactions_kept"] = float(len(interactions))
    return TenantExport(tenant=tenant, users=users, items=items, interactions=interactions,
                        fingerprint=reading.digest.hexdigest(), stats=reading.stats)
