"""Read and validate a Totara export folder (contract §4) into arrays.

Only the data classes live here for now; the parsers follow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

# One-hot columns of user_data (contract §5) and the free-text ones.
USER_MULTI_COLUMNS = ("interests", "asp_position", "positions", "organisations", "badges")
USER_TEXT_COLUMNS = ("lang", "city", "country", "description")


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
