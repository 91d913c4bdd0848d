"""Binary encoding of published top-K lists: 8 bytes an entry, formatted by the API.

A value holds one or more sections (one per item type for user and popularity lists, one for
similar items). Layout, little-endian::

    u8 format (=1) | u8 sections | u16 count[sections]
    | per section: u32 ids[count], f32 scores[count]

Ids are Totara's numeric ids with the type prefix removed (the section says the type). Every
reader raises ``CorruptListError`` (a ValueError), and nothing else, for a value it cannot read:
empty, truncated, an unknown format, counts that do not add up to its length.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence

import numpy as np

from runtime.errors import CorruptListError

FORMAT = 1
MAX_COUNT = 65535
# Parsed once: the API decodes a value on every request.
_IDS, _SCORES = np.dtype("<u4"), np.dtype("<f4")
_COUNTS = [struct.Struct(f"<{n}H") for n in range(256)]


def pack(sections: Sequence[tuple[np.ndarray, np.ndarray]]) -> bytes:
    """Encode ``[(ids, scores), ...]``; ids fit in uint32, scores are stored as float32."""
    counts = [len(ids) for ids, _ in sections]
    if any(c > MAX_COUNT for c in counts):
        raise ValueError(f"a packed list holds at most {MAX_COUNT} entries")
    parts = [struct.pack(f"<BB{len(counts)}H", FORMAT, len(counts), *counts)]
    for ids, scores in sections:
        parts.append(np.asarray(ids, dtype="<u4").tobytes())
        parts.append(np.asarray(scores, dtype="<f4").tobytes())
    return b"".join(parts)


def _locate(blob: bytes, section: int) -> tuple[int, int]:
    """``(offset of the section's ids, its count)`` once the value's header is whole and its
    counts add up to its length; count 0 past the last section. On the API's hot path: sums
    of tuple slices, no loop."""
    if len(blob) < 2:
        raise CorruptListError(f"a packed list of {len(blob)} bytes has no header")
    fmt, n_sections = blob[0], blob[1]
    if fmt != FORMAT:
        raise CorruptListError(f"unknown packed list format {fmt}")
    body = 2 + 2 * n_sections
    if len(blob) < body:
        raise CorruptListError(f"a packed list of {len(blob)} bytes is shorter than its header")
    counts = _COUNTS[n_sections].unpack_from(blob, 2)
    if body + 8 * sum(counts) != len(blob):
        raise CorruptListError(f"a packed list of {len(blob)} bytes does not hold its counts")
    if section >= n_sections:
        return 0, 0
    return body + 8 * sum(counts[:section]), counts[section]


def unpack(blob: bytes, section: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Decode one section into ``(ids uint32, scores float32)``; empty arrays past the last."""
    offset, count = _locate(blob, section)
    ids = np.frombuffer(blob, dtype=_IDS, count=count, offset=offset)
    scores = np.frombuffer(blob, dtype=_SCORES, count=count, offset=offset + 4 * count)
    return ids, scores


@functools.cache
def _head_formats(count: int) -> tuple[struct.Struct, struct.Struct]:
    return struct.Struct(f"<{count}I"), struct.Struct(f"<{count}f")


def head(blob: bytes, section: int, n: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The first ``n`` ids and scores of one section as Python numbers: what ``unpack`` gives,
    without numpy, whose array machinery costs more than the decoding (the API's hot path)."""
    offset, count = _locate(blob, section)
    ids, scores = _head_formats(max(0, min(n, count)))
    return ids.unpack_from(blob, offset), scores.unpack_from(blob, offset + 4 * count)


def unpack_all(blob: bytes) -> list[tuple[np.ndarray, np.ndarray]]:
    _locate(blob, 0)  # the header is whole before blob[1] is read
    return [unpack(blob, s) for s in range(blob[1])]


def heads(blobs: Sequence[bytes], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``n`` ids of every section of many values, read with array operations (the
    publisher counts them over every user's lists): ``(value index, section, id)`` int64
    arrays, value by value in the order given. Raises CorruptListError, as the other readers
    do, for a value whose header or length is not what it should be."""
    sizes = np.fromiter(map(len, blobs), np.int64, len(blobs))
    if (sizes < 2).any():
        raise CorruptListError("a packed list has no header")
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)[:len(blobs)]
    data = np.frombuffer(b"".join(blobs), np.uint8)
    formats = data[starts]
    if (formats != FORMAT).any():
        raise CorruptListError(f"unknown packed list format {formats[formats != FORMAT][0]}")
    n_sections = data[starts + 1]
    found = []
    for width in np.unique(n_sections).tolist():
        chosen = np.flatnonzero(n_sections == width)
        head = starts[chosen]
        counts = _counts(data, head, sizes[chosen], width)
        first = head[:, None] + 2 + 2 * width + 8 * (np.cumsum(counts, axis=1) - counts)
        for position in range(n):
            value, section = np.nonzero(counts > position)
            found.append((chosen[value], section.astype(np.int64),
                          _uint(data, first[value, section] + 4 * position, 4)))
    if not found:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64)
    values, sections, ids = (np.concatenate(parts) for parts in zip(*found, strict=True))
    order = np.argsort(values, kind="stable")
    return values[order], sections[order], ids[order]


def _counts(data: np.ndarray, head: np.ndarray, sizes: np.ndarray, width: int) -> np.ndarray:
    """The counts of values with ``width`` sections (rows x width), once their lengths agree."""
    if (sizes < 2 + 2 * width).any():
        raise CorruptListError("a packed list is shorter than its header")
    counts = np.zeros((len(head), width), np.int64)
    for s in range(width):
        counts[:, s] = _uint(data, head + 2 + 2 * s, 2)
    if (2 + 2 * width + 8 * counts.sum(axis=1) != sizes).any():
        raise CorruptListError("a packed list does not hold its counts")
    return counts


def _uint(data: np.ndarray, offsets: np.ndarray, size: int) -> np.ndarray:
    """Little-endian unsigned integers of ``size`` bytes at ``offsets``."""
    value = np.zeros(len(offsets), np.int64)
    for byte in range(size):
        value |= data[offsets + byte].astype(np.int64) << (8 * byte)
    return value
