"""Who used what in the demo export: interactions drawn from the hidden clusters.

Users mostly pick items of their own cluster (``IN_CLUSTER``), the rest from the whole catalogue,
both by Zipf-like popularity; heavy users are many times as active as light ones. Ratings are 1
more often inside the cluster. Draws are O(1) each, from Walker alias tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

WINDOW_SECONDS = 16 * 7 * 86400  # Totara's default interactions_period
IN_CLUSTER = 0.75  # chance that an interaction picks an item of the user's cluster


def _alias_tables(weights: np.ndarray, starts: np.ndarray,
                  ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Walker alias tables, one per segment [start, end): O(1) weighted draws from a segment.

    Position p of a segment is kept with probability ``keep[p]``, else replaced by ``alias[p]``
    (a position of the same segment). Built with plain loops: it is once per catalogue item.
    """
    keep = np.ones(len(weights))
    alias = np.arange(len(weights))
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        scaled = (weights[start:end] / weights[start:end].sum() * (end - start)).tolist()
        small = [p for p, w in enumerate(scaled) if w < 1.0]
        large = [p for p, w in enumerate(scaled) if w >= 1.0]
        while small and large:
            low, high = small.pop(), large[-1]
            keep[start + low] = scaled[low]
            alias[start + low] = start + high
            scaled[high] -= 1.0 - scaled[low]
            if scaled[high] < 1.0:
                small.append(large.pop())
    return keep, alias


def _draw(rng: np.random.Generator, keep: np.ndarray, alias: np.ndarray, starts: np.ndarray,
          sizes: np.ndarray) -> np.ndarray:
    """One weighted position per (segment start, segment size) pair."""
    position = starts + (rng.random(len(starts)) * sizes).astype(np.int64)
    return np.where(rng.random(len(starts)) < keep[position], position, alias[position])


@dataclass
class _Catalogue:
    """The items by popularity, to draw from within one cluster or from all of them."""

    order: np.ndarray  # item positions grouped by cluster
    starts: np.ndarray  # where each cluster's items start in ``order``
    sizes: np.ndarray  # how many items each cluster has
    local: tuple[np.ndarray, np.ndarray]  # alias tables per cluster, over ``order``
    anywhere: tuple[np.ndarray, np.ndarray]  # alias tables over every item

    @classmethod
    def of(cls, rng: np.random.Generator, item_cluster: np.ndarray) -> _Catalogue:
        n_items = len(item_cluster)
        # Zipf-like popularity: weight 1/rank over a random ranking of the catalogue.
        weight = 1.0 / (1.0 + rng.permutation(n_items))
        order = np.argsort(item_cluster, kind="stable")
        n_clusters = int(item_cluster.max()) + 1
        starts = np.searchsorted(item_cluster[order], np.arange(n_clusters))
        sizes = np.diff(np.r_[starts, n_items])
        return cls(order, starts, sizes, _alias_tables(weight[order], starts, starts + sizes),
                   _alias_tables(weight, np.array([0]), np.array([n_items])))

    def draw(self, rng: np.random.Generator, clusters: np.ndarray,
             inside: np.ndarray) -> np.ndarray:
        """One item per draw: of its cluster where ``inside``, else of the whole catalogue."""
        local = self.order[_draw(rng, *self.local, self.starts[clusters], self.sizes[clusters])]
        n = len(clusters)
        anywhere = _draw(rng, *self.anywhere, np.zeros(n, np.int64), np.full(n, len(self.order)))
        return np.where(inside, local, anywhere)


def _distinct_pairs(rng: np.random.Generator, n: int, user_cluster: np.ndarray,
                    catalogue: _Catalogue) -> tuple[np.ndarray, np.ndarray]:
    """``n`` distinct (user, item) pairs as user * n_items + item, sorted, and whether each
    was drawn inside the user's cluster."""
    n_users, n_items = len(user_cluster), len(catalogue.order)
    activity = rng.lognormal(0.0, 1.0, size=n_users)
    activity /= activity.sum()
    capacity = np.minimum(catalogue.sizes[user_cluster] / IN_CLUSTER, n_items)
    pairs = np.empty(0, np.int64)
    inside = np.empty(0, bool)
    # Repeated (user, item) pairs are dropped, so draw more until there are enough distinct ones;
    # heavy users of small catalogues repeat a lot, hence a bounded number of rounds.
    for _ in range(10):
        if len(pairs) >= n:
            break
        draw = int(1.25 * (n - len(pairs))) + 100
        # Rows come out grouped by user, so the sort of the pairs below is nearly linear.
        # Users near the end of what their cluster offers get fewer draws in later rounds.
        room = np.clip(1.0 - np.bincount(pairs // n_items, minlength=n_users) / capacity,
                       0.02, 1.0)
        chance = activity * room
        users = np.repeat(np.arange(n_users), rng.multinomial(draw, chance / chance.sum()))
        new_inside = rng.random(draw) < IN_CLUSTER
        items = catalogue.draw(rng, user_cluster[users], new_inside)
        pairs = np.concatenate([pairs, users * n_items + items])
        inside = np.concatenate([inside, new_inside])
        by_pair = np.argsort(pairs, kind="stable")
        pairs, inside = pairs[by_pair], inside[by_pair]
        first = np.r_[True, pairs[1:] != pairs[:-1]]
        pairs, inside = pairs[first], inside[first]
    if len(pairs) > n:  # drop the surplus at random, not from the end (the last users)
        surplus = np.zeros(len(pairs), bool)
        surplus[rng.choice(len(pairs), len(pairs) - n, replace=False)] = True
        pairs, inside = pairs[~surplus], inside[~surplus]
    return pairs, inside


def interaction_columns(rng: np.random.Generator, n: int, user_ids: np.ndarray,
                        user_cluster: np.ndarray, item_keys: pa.Array, item_cluster: np.ndarray,
                        now: int) -> dict:
    """The columns of user_interactions: ``n`` rows (fewer if there are not that many pairs),
    user by user as Totara lists them."""
    n_users, n_items = len(user_ids), len(item_keys)
    catalogue = _Catalogue.of(rng, item_cluster)
    pairs, inside = _distinct_pairs(rng, min(n, n_users * n_items), user_cluster, catalogue)
    users, items = pairs // n_items, pairs % n_items
    ratings = (rng.random(len(users)) < np.where(inside, 0.55, 0.25)).astype(np.int8)
    stamps = now - rng.integers(0, WINDOW_SECONDS, size=len(users))
    return {"user_id": pa.array(user_ids[users]),
            "item_id": pc.take(item_keys, pa.array(items)),
            "rating": pa.array(ratings), "timestamp": pa.array(stamps)}
