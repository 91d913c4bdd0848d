"""A tiny published model for the API tests, written with the real publisher (published.versions).

Two clusters of items, A and B, in every type: a user who interacted with A items must be
recommended A items first by fold-in, while the popularity lists put B first, so the tests can
tell the two cold paths apart. Every number a test checks is a constant here.
"""

from __future__ import annotations

import json
import time

import numpy as np
import redis

from published import keys, packing
from published.versions import VersionWriter
from runtime.items import FAMILY_OF_TYPE, ITEM_TYPES, TYPE_CODE, item_key

COURSE, WORKSPACE, ARTICLE, MICRO, PLAYLIST = (TYPE_CODE[t] for t in ITEM_TYPES)

# (type, Totara id, cluster): ids of articles and micro-learning are one id space in Totara.
ITEMS = (
    [(COURSE, i, "A" if i <= 3 else "B") for i in range(1, 7)]
    + [(WORKSPACE, i, "A" if i <= 2 else "B") for i in range(1, 5)]
    + [(ARTICLE, i, "A" if i <= 3 else "B") for i in range(1, 7)]
    + [(MICRO, 7, "A"), (MICRO, 8, "B"), (MICRO, 9, "B")]
    + [(PLAYLIST, i, "A" if i <= 2 else "B") for i in range(1, 5)]
)
DIM = 4

# Published lists of known users: per type, (ids, scores) best first.
USER_LISTS = {
    1: {COURSE: ([3, 1, 2], [0.8123, 0.5, -0.0456]),
        ARTICLE: ([2, 5, 1, 6], [1.5, 0.25, 0.0, -2.0]),
        MICRO: ([9], [0.1])},
    2: {WORKSPACE: ([4, 3], [0.7, 0.6])},
}
# Popularity: cluster B first, so that a popularity answer never looks like a fold-in one.
POPULAR = {
    COURSE: ([6, 5, 4, 1], [40.0, 30.0, 20.0, 10.0]),
    ARTICLE: ([6, 5, 4, 3, 2, 1], [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]),
    MICRO: ([9, 8, 7], [3.0, 2.0, 1.0]),
    PLAYLIST: ([4, 3], [2.0, 1.0]),
}
META = {"status": "trained", "algorithm": "hybrid", "n_users": 3, "n_items": len(ITEMS),
        "n_interactions": 12, "epochs": 5, "components": DIM, "precision_at_10": 0.31,
        "recall_at_10": 0.42, "auc": 0.87, "top_k": 50}


def embeddings() -> tuple[np.ndarray, np.ndarray]:
    """Item embeddings (cluster direction, slightly decreasing norm) and small biases that favour
    cluster B, so only the fold-in term can put A first."""
    rows, biases = [], []
    for position, (_, number, cluster) in enumerate(ITEMS):
        direction = np.eye(DIM)[0 if cluster == "A" else 1]
        rows.append(direction * (1.0 - 0.01 * number) + 0.001 * position * np.eye(DIM)[2])
        biases.append(0.0 if cluster == "A" else 0.05)
    return np.asarray(rows, dtype=np.float32), np.asarray(biases, dtype=np.float32)


def similar_lists() -> dict[tuple[int, int], tuple[list[int], list[float]]]:
    """Cosine neighbours of every item within its family, itself excluded, best first."""
    emb, _ = embeddings()
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    lists = {}
    for i, (type_code, number, _) in enumerate(ITEMS):
        family = [j for j, (t, _, _) in enumerate(ITEMS)
                  if FAMILY_OF_TYPE[t] == FAMILY_OF_TYPE[type_code] and j != i]
        sims = unit[family] @ unit[i]
        order = np.argsort(-sims, kind="stable")
        lists[(type_code, number)] = ([ITEMS[family[k]][1] for k in order],
                                      [float(sims[k]) for k in order])
    return lists


def _pack_per_type(lists: dict[int, tuple[list[int], list[float]]]) -> bytes:
    return packing.pack([(np.array(lists.get(t, ([], []))[0], "<u4"),
                          np.array(lists.get(t, ([], []))[1], "<f4"))
                         for t in range(len(ITEM_TYPES))])


def publish_tiny_model(client: redis.Redis, tenant: str = "0",
                       trained_at: float | None = None) -> str:
    """Publish the model above for ``tenant``; returns the version."""
    emb, biases = embeddings()
    writer = VersionWriter(client, tenant)
    writer.write_model({
        "shape": json.dumps({"n_items": len(ITEMS), "dim": DIM, "n_user_features": 0}).encode(),
        "item_numbers": np.array([n for _, n, _ in ITEMS], "<u4").tobytes(),
        "item_types": np.array([t for t, _, _ in ITEMS], "u1").tobytes(),
        "item_embeddings": emb.astype("<f4").tobytes(),
        "item_biases": biases.astype("<f4").tobytes(),
        "user_feature_embeddings": b"",
        "user_feature_biases": b"",
        "user_feature_names": b"[]",
    })
    writer.write_popular(_pack_per_type(POPULAR))
    writer.write_users((uid, _pack_per_type(lists)) for uid, lists in USER_LISTS.items())
    writer.write_items(
        (item_key(t, n), n, packing.pack([(np.array(ids, "<u4"), np.array(scores, "<f4"))]))
        for (t, n), (ids, scores) in similar_lists().items())
    writer.commit({**META, "trained_at": time.time() if trained_at is None else trained_at})
    return writer.version


def publish_not_trained(client: redis.Redis, tenant: str) -> str:
    writer = VersionWriter(client, tenant)
    writer.commit({"status": "not_trained", "algorithm": "hybrid", "trained_at": time.time(),
                   "message": "The number of users or items is too small"})
    return writer.version


def add_recent_events(client: redis.Redis, tenant: str, user_id: int,
                      events: list[tuple[str, int]]) -> None:
    """Store interaction events as the consumer does: JSON, newest first (give them so)."""
    now = int(time.time())
    client.rpush(keys.recent(tenant, user_id),
                 *[json.dumps({"item_id": item, "timestamp": now - i, "rating": rating})
                   for i, (item, rating) in enumerate(events)])
