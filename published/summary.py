"""``ML_LOGS_DIR/train_summary.log``: the original's CSV, one row per tenant per run, 100 kept.

Whatever the file holds, it can be read and appended to: every value is written on one line and
capped (a message quoting a whole export field must not make a row of megabytes), and reading
takes the file line by line, skipping what is not a row this module wrote. A row over Python's
csv field limit, garbage bytes or a line cut short by a full disk cost that line only, never the
rows before or after it, nor the run appending its own.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import re
import time
from pathlib import Path
from typing import BinaryIO

from runtime.errors import capped

HEADER = ["TIMESTAMP", "ALGORITHM", "TENANT_ID", "MSG", "EPOCHS", "N_EMBEDDINGS", "SCORE"]
KEEP_ROWS = 100
FILE_NAME = "train_summary.log"
# A value's length on write, its "…" and length note included; longer lines are not ours.
MAX_FIELD_CHARS = 2000
MAX_LINE_CHARS = 4 * len(HEADER) * MAX_FIELD_CHARS  # quotes doubled, well under csv's 131,072
# Only the end of a file is read: KEEP_ROWS rows of capped values fit in it many times over.
MAX_READ_BYTES = 4 << 20
_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _field(value: object) -> str:
    """One line of text at most MAX_FIELD_CHARS long."""
    text = " ".join(_CONTROL.sub(" ", str(value)).split())
    if len(text) <= MAX_FIELD_CHARS:
        return text
    # The cap's note ("… (123,456 characters)") takes at most 30 characters.
    return capped(text, MAX_FIELD_CHARS - 30)


def _parse(line: str) -> list[str] | None:
    """The row on ``line``, or None when it is not one this module could have written."""
    if len(line) > MAX_LINE_CHARS:
        return None
    try:
        row = next(csv.reader([line.removesuffix("\r")]), None)
    except csv.Error:
        return None
    if row is None or len(row) != len(HEADER) or not _STAMP.fullmatch(row[0]):
        return None
    return [_field(value) for value in row]


def _rows(handle: BinaryIO) -> list[list[str]]:
    size = handle.seek(0, os.SEEK_END)
    start = max(0, size - MAX_READ_BYTES)
    handle.seek(start)
    lines = handle.read().decode("utf-8", "replace").split("\n")
    if start:
        lines = lines[1:]  # the end of a line that began before the part read
    return [row for row in map(_parse, lines) if row is not None]


def append(logs_dir: Path, algorithm: str, tenant: str, message: str, epochs: int | str = "",
           components: int | str = "", score: float | str = "", now: float | None = None) -> None:
    """Add a row, keeping the newest KEEP_ROWS; safe with several processes writing at once."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() if now is None else now))
    score_text = f"{score:.4f}" if isinstance(score, float) else str(score)
    row = [stamp] + [_field(v) for v in (algorithm, tenant, message, epochs, components,
                                         score_text)]
    with open(logs_dir / FILE_NAME, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        rows = (_rows(handle) + [row])[-KEEP_ROWS:]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
        handle.seek(0)
        handle.truncate()
        handle.write(out.getvalue().encode("utf-8", "replace"))


def read(logs_dir: Path) -> list[dict[str, str]]:
    """The rows, oldest first; raises OSError only when the file exists and cannot be read."""
    path = logs_dir / FILE_NAME
    if not path.exists():
        return []
    with open(path, "rb") as handle:
        return [dict(zip(HEADER, row, strict=True)) for row in _rows(handle)]
