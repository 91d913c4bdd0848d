"""Evaluation protocols: which interactions are held out, to measure models on.

Per user, 20 % of the pairs: a random 20 % (``random``) or the most recent (``time``). A second
split holds out whole users and whole items (all of their interactions) to measure cold start:
only models that use features can rank those.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from recommender.ingest.export import TenantExport
from recommender.ingest.tables import Interactions
from recommender.model.ranking import holdout_mask

PROTOCOLS = ("random", "time")


@dataclass
class Split:
    protocol: str
    train: TenantExport  # the export with only the training interactions
    test: sp.csr_matrix  # users x items, 1 per held-out pair
    cold_users: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    cold_items: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def train_matrix(self) -> sp.csr_matrix:
        inter = self.train.interactions
        return _matrix(inter.users, inter.items, self.test.shape)


def _matrix(users: np.ndarray, items: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    matrix = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=shape)
    matrix.data[:] = 1.0
    return matrix


def keep_interactions(data: TenantExport, keep: np.ndarray) -> TenantExport:
    """The export with only the interactions where ``keep`` is true."""
    inter = data.interactions
    kept = Interactions(inter.users[keep], inter.items[keep], inter.ratings[keep],
                        inter.timestamps[keep])
    return replace(data, interactions=kept, fingerprint=f"{data.fingerprint}:train")


def split(data: TenantExport, protocol: str = "random", fraction: float = 0.2,
          seed: int = 0) -> Split:
    """Per user, hold out ``fraction`` of the pairs: random ones, or the most recent ones."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}")
    inter = data.interactions
    jitter = np.random.default_rng(seed).random(len(inter))
    # Ties in time (same second) are broken at random rather than by file order.
    order = jitter if protocol == "random" else inter.timestamps + 0.5 * jitter
    test = holdout_mask(inter.users, order, fraction)
    shape = (len(data.users), len(data.items))
    held_out = _matrix(inter.users[test], inter.items[test], shape)
    return Split(protocol, keep_interactions(data, ~test), held_out)


def cold_split(data: TenantExport, fraction: float = 0.1, seed: int = 0) -> Split:
    """Hold out every interaction of a random ``fraction`` of the users and of the items."""
    inter = data.interactions
    rng = np.random.default_rng(seed + 7)
    active_users = np.unique(inter.users)
    cold_users = np.sort(rng.choice(active_users, int(len(active_users) * fraction),
                                    replace=False))
    active_items = np.unique(inter.items)
    cold_items = np.zeros(len(data.items), bool)
    cold_items[rng.choice(active_items, int(len(active_items) * fraction), replace=False)] = True
    test = np.isin(inter.users, cold_users) | cold_items[inter.items]
    shape = (len(data.users), len(data.items))
    held_out = _matrix(inter.users[test], inter.items[test], shape)
    return Split("cold", keep_interactions(data, ~test), held_out, cold_users, cold_items)
