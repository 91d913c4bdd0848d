"""A version's published lists kept beside its saved model: ``<version>.lists.npz``.

The values are exactly the packed bytes written to Redis (published.packing), so ``restore``
republishes a version by copying them, with no model code and nothing to compute. The file is a
zip of ``.npy`` entries like ``np.savez`` writes, but written batch by batch as the lists are
computed, and read back batch by batch: a tenant's lists never sit in memory all at once.

Entries: ``header`` (format, top-K), ``popular``, then per batch ``users.<n>.ids`` with
``users.<n>.sizes`` + ``users.<n>.blobs`` (the values, end to end), and ``items.<n>.keys``,
``items.<n>.numbers`` with their sizes and blobs; last, when it was counted with the lists,
``near_top.counts``, ``near_top.rows`` and ``near_top.users`` (recommender.publish.neartop).
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from numpy.lib.npyio import NpzFile

from recommender.publish.neartop import NearTop, UserBatch

FORMAT = 1

ItemBatch = list[tuple[str, int, bytes]]  # (item key, item number, packed similar items)


@dataclass
class Lists:
    """A version's lists as they are published: computed (recommender.publish.precompute) or
    read back from its file."""

    top_k: int
    popular: bytes
    users: Iterable[UserBatch]
    items: Iterable[ItemBatch]
    # counted while ``users`` are read (computed lists) or read back whole; None: not kept
    near_top: NearTop | None = None


def _put(archive: zipfile.ZipFile, name: str, array: np.ndarray) -> None:
    with archive.open(f"{name}.npy", "w") as entry:
        np.lib.format.write_array(entry, array, allow_pickle=False)


def _put_blobs(archive: zipfile.ZipFile, prefix: str, blobs: Sequence[bytes]) -> None:
    _put(archive, f"{prefix}.sizes", np.fromiter(map(len, blobs), np.int64, len(blobs)))
    _put(archive, f"{prefix}.blobs", np.frombuffer(b"".join(blobs), np.uint8))


def write(handle: IO[bytes], lists: Lists) -> dict[str, int]:
    """Write ``lists`` batch by batch; returns how many values of each kind were written."""
    written = {"users": 0, "items": 0}
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
        _put(archive, "header", np.array([FORMAT, lists.top_k], np.int64))
        _put(archive, "popular", np.frombuffer(lists.popular, np.uint8))
        for n, users in enumerate(lists.users):
            _put(archive, f"users.{n}.ids", np.array([u for u, _ in users], np.int64))
            _put_blobs(archive, f"users.{n}", [blob for _, blob in users])
            written["users"] += len(users)
        for n, items in enumerate(lists.items):
            _put(archive, f"items.{n}.keys", np.array([k for k, _, _ in items], dtype=str))
            _put(archive, f"items.{n}.numbers", np.array([i for _, i, _ in items], np.uint32))
            _put_blobs(archive, f"items.{n}", [blob for *_, blob in items])
            written["items"] += len(items)
        if lists.near_top is not None:  # whole now: every user batch has been read
            for name, array in lists.near_top.to_arrays().items():
                _put(archive, f"near_top.{name}", array)
    return written


def _blobs(data: NpzFile, prefix: str) -> list[bytes]:
    sizes, raw = data[f"{prefix}.sizes"], data[f"{prefix}.blobs"].tobytes()
    ends = np.cumsum(sizes).tolist()
    return [raw[end - size:end] for end, size in zip(ends, sizes.tolist(), strict=True)]


def _users(data: NpzFile, names: set[str]) -> Iterator[UserBatch]:
    n = 0
    while f"users.{n}.ids" in names:
        ids = data[f"users.{n}.ids"].tolist()
        yield list(zip(ids, _blobs(data, f"users.{n}"), strict=True))
        n += 1


def _items(data: NpzFile, names: set[str]) -> Iterator[ItemBatch]:
    n = 0
    while f"items.{n}.keys" in names:
        keys, numbers = data[f"items.{n}.keys"].tolist(), data[f"items.{n}.numbers"].tolist()
        yield list(zip(keys, numbers, _blobs(data, f"items.{n}"), strict=True))
        n += 1


def _check_whole(path: Path, data: NpzFile, names: set[str]) -> None:
    """Refuse a damaged or incomplete file before any of it is published: a bad entry found
    half-way through would fail a restore that computing the lists again can do."""
    if not {"header", "popular"} <= names:
        raise ValueError(f"{path} is not a lists file")
    damaged = data.zip.testzip()
    if damaged is not None:
        raise ValueError(f"{path} is damaged (entry {damaged})")
    for kind, first in (("users", "ids"), ("items", "keys")):
        batches = [name.split(".")[1] for name in names
                   if name.startswith(f"{kind}.") and name.endswith(f".{first}")]
        parts = ("sizes", "blobs") if kind == "users" else ("numbers", "sizes", "blobs")
        missing = [f"{kind}.{n}.{part}" for n in batches for part in parts
                   if f"{kind}.{n}.{part}" not in names]
        if missing or sorted(map(int, batches)) != list(range(len(batches))):
            raise ValueError(f"{path} is incomplete ({kind} batches)")


@contextmanager
def read(path: Path) -> Iterator[Lists]:
    """The lists of the file, read batch by batch while the context is open; raises OSError,
    or ValueError for a file this code did not write."""
    try:
        data = np.load(path, allow_pickle=False)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path} is not a whole lists file: {exc}") from None
    if not isinstance(data, NpzFile):
        raise ValueError(f"{path} is not a lists file")
    with data:
        names = set(data.files)
        _check_whole(path, data, names)
        version, top_k = data["header"].tolist()
        if version != FORMAT:
            raise ValueError(f"{path} has lists format {version}, not {FORMAT}")
        yield Lists(top_k, data["popular"].tobytes(), _users(data, names), _items(data, names),
                    _near_top(path, data, names))


def _near_top(path: Path, data: NpzFile, names: set[str]) -> NearTop | None:
    """The count kept with the lists; None in a file written before it was kept."""
    parts = {f"near_top.{name}" for name in ("counts", "rows", "users")}
    if not parts & names:
        return None
    if not parts <= names:
        raise ValueError(f"{path} is incomplete (near_top)")
    try:
        return NearTop.from_arrays(data["near_top.counts"], data["near_top.rows"],
                                   data["near_top.users"])
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
