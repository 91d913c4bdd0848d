"""Binary encoding of published top-K lists: 8 bytes an entry, formatted by the API.

A value holds one or more sections (one per item type for user and popularity lists, one for
similar items). Layout, little-endian::

    u8 format (=1) | u8 sections | u16 count[sections]
    | per section: u32 ids[count], f32 scores[count]

Ids are Totara's numeric ids with the type prefix removed (the section says the type).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence

import numpy as np

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


def unpack(blob: bytes, section: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Decode one section into ``(ids uint32, scores float32)``; empty arrays past the last."""
    fmt, n_sections = blob[0], blob[1]
    if fmt != FORMAT:
        raise ValueError(f"unknown packed list format {fmt}")
    if section >= n_sections:
        return np.empty(0, _IDS), np.empty(0, _SCORES)
    counts = _COUNTS[n_sections].unpack_from(blob, 2)
    offset = 2 + 2 * n_sections + 8 * sum(counts[:section])
    count = counts[section]
    ids = np.frombuffer(blob, dtype=_IDS, count=count, offset=offset)
    scores = np.frombuffer(blob, dtype=_SCORES, count=count, offset=offset + 4 * count)
    return ids, scores


@functools.cache
def _head_formats(count: int) -> tuple[struct.Struct, struct.Struct]:
    return struct.Struct(f"<{count}I"), struct.Struct(f"<{count}f")


def head(blob: bytes, section: int, n: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """The first ``n`` ids and scores of one section as Python numbers: what ``unpack`` gives,
    without numpy, whose array machinery costs more than the decoding (the API's hot path)."""
    fmt, n_sections = blob[0], blob[1]
    if fmt != FORMAT:
        raise ValueError(f"unknown packed list format {fmt}")
    if section >= n_sections:
        return (), ()
    counts = _COUNTS[n_sections].unpack_from(blob, 2)
    offset = 2 + 2 * n_sections + 8 * sum(counts[:section])
    count = counts[section]
    ids, scores = _head_formats(min(n, count))
    return ids.unpack_from(blob, offset), scores.unpack_from(blob, offset + 4 * count)


def unpack_all(blob: bytes) -> list[tuple[np.ndarray, np.ndarray]]:
    return [unpack(blob, s) for s in range(blob[1])]


def heads(blobs: Sequence[bytes], n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The first ``n`` ids of every section of many values, read with array operations (the
    publisher counts them over every user's lists): ``(value index, section, id)`` int64
    arrays, value by value in the order given."""
    sizes = np.fromiter(map(len, blobs), np.int64, len(blobs))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    data = np.frombuffer(b"".join(blobs), np.uint8)
    n_sections = data[starts + 1] if len(blobs) else np.empty(0, np.uint8)
    found = []
    for width in np.unique(n_sections).tolist():
        if width == 0:  # a value without sections has no ids
            continue
        chosen = np.flatnonzero(n_sections == width)
        head = starts[chosen]
        counts = np.stack([_uint(data, head + 2 + 2 * s, 2) for s in range(width)], axis=1)
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


def _uint(data: np.ndarray, offsets: np.ndarray, size: int) -> np.ndarray:
    """Little-endian unsigned integers of ``size`` bytes at ``offsets``."""
    value = np.zeros(len(offsets), np.int64)
    for byte in range(size):
        value |= data[offsets + byte].astype(np.int64) << (8 * byte)
    return value
