"""CSV reading for the export parser: a fast pyarrow pass, and an exact slow pass for bad files.

Good files are read once by pyarrow and checked with vectorised compute functions. Anything
wrong there (a parse error or a failed check) raises ``Fallback``, and the caller re-reads the
file record by record with Python's csv module: its record positions give the exact physical
line of the first problem even when quoted fields span lines, so messages are exact and good
files never pay for the slow pass.

Problems are reported as ``BadFile`` with a complete one-line message; ingest.export turns
them into its ExportError.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from runtime.errors import BadFile, capped

BOM = b"\xef\xbb\xbf"
MAX_ID_DIGITS = 18  # keeps ids inside int64
# What a file's own whitespace around a number may be: pyarrow's integer parser skips it.
SPACES = " \t"

RowCheck = Callable[[list[str]], "str | None"]
# The fast parser reads blocks of this many bytes in parallel; a record longer than two blocks
# cannot be split between them and is read again in one (read_table).
BLOCK_BYTES = 8 << 20
# What one record (a row: a user, an item and its document) may hold; a longer one is refused,
# named by file and line.
MAX_RECORD_CHARS = 64 << 20

# Long documents are fine (pyarrow has no limit either), and a field over the csv module's
# default of 131,072 characters must be read to be named. Set once for the process rather than
# around each use: the limit is global, and setting and restoring it races between threads.
csv.field_size_limit(2**31 - 1)


# Fallback and RowProblem are signals between the two passes, not failures: they never leave
# the reader (export.py and this module turn them into BadFile or ExportError a few lines from
# where they are raised), so they stay out of runtime.errors' hierarchy and a caller's
# ``except ServiceError`` can never swallow one by mistake.
class Fallback(Exception):
    """The fast pass found something wrong; the slow pass finds out what and where."""


class RowProblem(Exception):
    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line, self.problem = line, problem


# --------------------------------------------------------------------------- whole file


def read_file(directory: Path, name: str) -> bytes:
    try:
        return (directory / name).read_bytes()
    except FileNotFoundError:
        raise BadFile(f"{name}: the file is missing") from None
    except OSError as exc:
        raise BadFile(f"{name}: the file cannot be read ({exc.strerror})") from None


def check_bytes(name: str, data: bytes) -> None:
    """Problems that make the whole file unreadable: emptiness, encoding, truncation."""
    if data in (b"", BOM):
        raise BadFile(f"{name} line 1: the file is empty (expected a header line)")
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise BadFile(f"{name} line {line}: not UTF-8 (byte 0x{data[exc.start]:02x} at "
                          f"offset {exc.start})") from None
    # fputcsv ends every record with a line end, so a file without one was cut short.
    if not data.endswith(b"\n"):
        line = data.count(b"\n") + 1
        raise BadFile(f"{name} line {line}: the file is truncated (the last line has no line "
                      "end)")


def text(data: bytes) -> str:
    return data.decode("utf-8").removeprefix("\ufeff")


def header(name: str, data: bytes) -> list[str]:
    first = text(data[:data.index(b"\n") + 1])
    try:
        return next(csv.reader([first], strict=True))
    except (csv.Error, StopIteration):
        raise BadFile(f"{name} line 1: the header line is not valid CSV") from None


# --------------------------------------------------------------------------- slow pass


# One record as fputcsv writes it: fields either wholly quoted (quotes doubled inside) or free of
# quotes, commas and line ends. Python's csv module takes a stray quote inside an unquoted field
# as text, and so does pyarrow, but fputcsv never writes one: it means the file is damaged.
_FIELD = r'(?:"[^"]*(?:""[^"]*)*"|[^,"\n]*)'
_RECORD = re.compile(rf"{_FIELD}(?:,{_FIELD})*\r?\n")


def records(content: str) -> Iterator[tuple[int, list[str]]]:
    """CSV records with the physical line each starts on (the header is line 1)."""
    consumed: list[str] = []

    def lines() -> Iterator[str]:
        # newline="\n": a physical line is what ends in \n, as the messages count them.
        for line in io.StringIO(content, newline="\n"):
            consumed.append(line)
            yield line

    reader = csv.reader(lines(), strict=True)
    start = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise RowProblem(start, "unterminated quote (the quoted field starting here "
                                 "never ends)") from None
            if "new-line character" in str(exc):
                raise RowProblem(start, "a line break character inside a field that is not "
                                 "quoted") from None
            if "expected after" in str(exc):
                raise RowProblem(start, "broken quoting (text after a closing quote)") from None
            raise RowProblem(start, f"broken quoting ({exc})") from None
        if not _RECORD.fullmatch("".join(consumed)):
            raise RowProblem(start, "broken quoting (a quote inside a field that is not "
                             "quoted as a whole)")
        consumed.clear()
        yield start, row
        start = reader.line_num + 1


def slow_check(name: str, data: bytes, n_columns: int, check: RowCheck, why: str) -> NoReturn:
    """Walk the file record by record and raise BadFile for the first bad one."""
    try:
        for line, row in records(text(data)):
            if line == 1 or not row:
                continue
            if len(row) != n_columns:
                raise RowProblem(line, f"{len(row)} fields, expected {n_columns}")
            problem = check(row)
            if problem is not None:
                raise RowProblem(line, problem)
    except RowProblem as exc:
        raise BadFile(f"{name} line {exc.line}: {exc.problem}") from None
    # The fast pass disagreed with every row: say what it saw rather than nothing (pyarrow's
    # messages may quote a whole record).
    raise BadFile(f"{name}: could not be read ({capped(why, 300)})")


def is_whole(value: str, digits: int = MAX_ID_DIGITS) -> bool:
    value = value.strip(SPACES)
    return value.isascii() and value.isdigit() and len(value) <= digits


# --------------------------------------------------------------------------- fast pass


def read_table(name: str, data: bytes, names: list[str], quoted_newlines: bool,
               types: dict[str, pa.DataType] | None = None) -> pa.Table:
    """Columns as non-null strings unless ``types`` says otherwise; pyarrow skips a BOM itself."""
    # pyarrow takes a quote left open at the end of the file as ending there; an odd number
    # of quote characters can only come from broken quoting.
    if data.count(b'"') % 2:
        raise Fallback
    try:
        return _parse(data, names, quoted_newlines, types, BLOCK_BYTES)
    except pa.ArrowInvalid as exc:
        if "straddl" not in str(exc):
            raise
    # A record longer than two blocks: refused by name if it is longer than a record may be,
    # else read again in blocks that hold it (one UTF-8 character is at most 4 bytes).
    check_record_sizes(name, data)
    block = min(len(data) + 1, 4 * MAX_RECORD_CHARS + 1)
    return _parse(data, names, quoted_newlines, types, max(block, BLOCK_BYTES))


def _parse(data: bytes, names: list[str], quoted_newlines: bool,
           types: dict[str, pa.DataType] | None, block: int) -> pa.Table:
    return pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(use_threads=True, block_size=block),
        parse_options=pacsv.ParseOptions(newlines_in_values=quoted_newlines),
        convert_options=pacsv.ConvertOptions(
            column_types={n: (types or {}).get(n, pa.string()) for n in names},
            strings_can_be_null=False, quoted_strings_can_be_null=False, check_utf8=False))


def check_record_sizes(name: str, data: bytes) -> None:
    """BadFile naming the first record longer than MAX_RECORD_CHARS, or badly quoted."""
    try:
        for line, row in records(text(data)):
            size = sum(map(len, row))
            if size > MAX_RECORD_CHARS:
                raise RowProblem(line, f"a record of {size:,} characters, more than the "
                                 f"{MAX_RECORD_CHARS:,} one record may hold")
    except RowProblem as exc:
        raise BadFile(f"{name} line {exc.line}: {exc.problem}") from None


def require(mask: pa.ChunkedArray | pa.Array) -> None:
    if not pc.all(mask, min_count=0).as_py():
        raise Fallback


def whole_numbers(column: pa.ChunkedArray, digits: int = MAX_ID_DIGITS) -> np.ndarray:
    column = pc.utf8_trim(column, SPACES)
    require(pc.ascii_is_decimal(column))
    require(pc.less_equal(pc.binary_length(column), digits))
    return pc.cast(column, pa.int64()).to_numpy()


def flags(column: pa.ChunkedArray) -> np.ndarray:
    """A 0/1 column as booleans."""
    ones = pc.equal(column, "1")
    require(pc.or_(ones, pc.equal(column, "0")))
    return ones.to_numpy()


def split_tokens(column: pa.ChunkedArray, sep: str) -> tuple[np.ndarray, pa.Array]:
    """Split every cell on ``sep`` and drop empty tokens: (owner row per token, tokens)."""
    lists = pc.split_pattern(column.combine_chunks(), sep)
    owners = pc.list_parent_indices(lists).to_numpy()
    tokens = pc.list_flatten(lists)
    keep = pc.not_equal(tokens, "")
    return owners[keep.to_numpy(zero_copy_only=False)], tokens.filter(keep)


def group_rows(n: int, owners: np.ndarray, values: list) -> list[list]:
    """Python lists per row from (owner, value) pairs, owners ascending."""
    bounds = np.searchsorted(owners, np.arange(n + 1)).tolist()
    return [values[bounds[i]:bounds[i + 1]] for i in range(n)]
