"""Which items are near the top of whose lists: the explorer's count, kept with the lists.

Counted once, while the user lists are computed (recommender.publish.precompute), and saved in
the lists file beside them, so publishing and ``restore`` read it instead of counting again. A
lists file written before it was kept is counted while its lists are published.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from published import explore, packing

UserBatch = list[tuple[int, bytes]]  # (user id, packed lists per item type)


class NearTop:
    """Per item row, the users who have it in the first NEAR_TOP entries of a list of its
    type (``counts``), and the first NEAR_TOP_USERS of them in the order of the lists
    (``users``)."""

    def __init__(self, item_types: np.ndarray, item_numbers: np.ndarray) -> None:
        packed = (item_types.astype(np.int64) << 32) | item_numbers.astype(np.int64)
        self._order = np.argsort(packed, kind="stable")
        self._sorted = packed[self._order]
        self.counts = np.zeros(len(packed), np.int64)
        self.users: dict[int, list[int]] = {}
        self._named = np.zeros(len(packed), np.int64)

    def watch(self, batches: Iterable[UserBatch]) -> Iterator[UserBatch]:
        """The batches unchanged, counted on their way."""
        for batch in batches:
            self._count(batch)
            yield batch

    def _count(self, batch: UserBatch) -> None:
        values, sections, ids = packing.heads([blob for _, blob in batch], explore.NEAR_TOP)
        owners = np.fromiter((u for u, _ in batch), np.int64, len(batch))[values]
        packed = (sections << 32) | ids
        pos = np.minimum(np.searchsorted(self._sorted, packed), len(self._sorted) - 1)
        found = self._sorted[pos] == packed
        rows, users = self._order[pos[found]], owners[found]
        self.counts += np.bincount(rows, minlength=len(self.counts))
        self._name(rows, users)

    def _name(self, rows: np.ndarray, users: np.ndarray) -> None:
        """Keep the first NEAR_TOP_USERS users of each row, in the order of the lists."""
        named = self._named
        still = named[rows] < explore.NEAR_TOP_USERS
        rows, users = rows[still], users[still]
        order = np.argsort(rows, kind="stable")
        rows, users = rows[order], users[order]
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
        keep = rank < explore.NEAR_TOP_USERS - named[rows]
        for row, user in zip(rows[keep].tolist(), users[keep].tolist(), strict=True):
            self.users.setdefault(row, []).append(user)
        self._named = named + np.bincount(rows[keep], minlength=len(self.counts))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """``counts``, and ``users`` as (row, user) pairs in the order they were named."""
        rows = [row for row, users in self.users.items() for _ in users]
        named = [user for users in self.users.values() for user in users]
        return {"counts": self.counts, "rows": np.asarray(rows, np.int64),
                "users": np.asarray(named, np.int64)}

    @classmethod
    def from_arrays(cls, counts: np.ndarray, rows: np.ndarray, users: np.ndarray) -> NearTop:
        """A count read back; raises ValueError when the arrays do not agree."""
        counts = np.asarray(counts)
        if (counts.ndim != 1 or rows.shape != users.shape or rows.ndim != 1
                or not np.issubdtype(counts.dtype, np.integer) or (counts < 0).any()
                or not np.issubdtype(rows.dtype, np.integer)
                or not np.issubdtype(users.dtype, np.integer)
                or ((rows < 0) | (rows >= len(counts))).any()):
            raise ValueError("the near-top count's arrays do not agree")
        tally = cls(np.zeros(0, np.int64), np.zeros(0, np.int64))
        tally.counts = counts.astype(np.int64)
        for row, user in zip(rows.tolist(), users.tolist(), strict=True):
            tally.users.setdefault(row, []).append(user)
        return tally
