"""Small in-memory tenants for unit tests: no CSV, known structure.

Users belong to one of ``clusters`` groups, visible in their ``interests``; items too, visible in
their tags; users mostly pick items of their own group. A model that learns anything beats
popularity here.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from published.savedmodel import OPTIMISER_STATE, FeatureParameters, SavedModel
from recommender.ingest.export import TenantExport
from recommender.ingest.tables import Interactions, Items, Users
from runtime.items import ITEM_TYPES, item_key


def make_export(n_users: int = 200, n_items: int = 60, per_user: int = 8, clusters: int = 4,
                seed: int = 0, tenant: str = "0") -> TenantExport:
    rng = np.random.default_rng(seed)
    user_cluster = rng.integers(0, clusters, n_users)
    item_cluster = np.arange(n_items) % clusters
    types = (np.arange(n_items) // clusters) % len(ITEM_TYPES)
    numbers = np.arange(1, n_items + 1, dtype=np.uint32)
    users = Users(
        ids=np.arange(100, 100 + n_users, dtype=np.int64),
        text={"lang": ["en"] * n_users, "city": ["Wellington"] * n_users,
              "country": ["NZ"] * n_users,
              "description": [f"likes topic{c} and words{c}" for c in user_cluster]},
        multi={"interests": [[str(c)] for c in user_cluster], "asp_position": [[]] * n_users,
               "positions": [[str(10 + c)] for c in user_cluster],
               "organisations": [[]] * n_users, "badges": [[]] * n_users},
        competencies=[[] for _ in range(n_users)],
    )
    tags = sp.csr_matrix((np.ones(n_items, np.float32), (np.arange(n_items), item_cluster)),
                         shape=(n_items, clusters))
    items = Items(
        keys=[item_key(int(t), int(n)) for t, n in zip(types, numbers, strict=True)],
        types=types.astype(np.uint8), numbers=numbers,
        tag_names=[f"topic_{c}" for c in range(clusters)], tags=tags,
        documents=[f"document about topic{c} words{c}" for c in item_cluster],
    )
    rows, cols = [], []
    for u in range(n_users):
        own = np.flatnonzero(item_cluster == user_cluster[u])
        pool = np.where(rng.random(per_user) < 0.85, rng.choice(own, per_user),
                        rng.integers(0, n_items, per_user))
        for i in np.unique(pool):
            rows.append(u)
            cols.append(i)
    n = len(rows)
    inter = Interactions(users=np.asarray(rows, np.int32), items=np.asarray(cols, np.int32),
                         ratings=rng.integers(0, 2, n).astype(np.int8),
                         timestamps=np.full(n, 1_700_000_000, np.int64))
    return TenantExport(tenant=tenant, users=users, items=items, interactions=inter,
                        fingerprint=f"fp-{seed}-{n_users}-{n_items}")


def reindex(data: TenantExport, user_rows: np.ndarray, item_rows: np.ndarray,
            keep_pairs: np.ndarray | None = None) -> TenantExport:
    """The export with only these users and items, in this order (rows of ``data``), and the
    interactions among them (and in ``keep_pairs``, a mask over interactions, if given)."""
    user_rows, item_rows = np.asarray(user_rows), np.asarray(item_rows)
    users, items, inter = data.users, data.items, data.interactions
    new_user = np.full(len(users), -1)
    new_user[user_rows] = np.arange(len(user_rows))
    new_item = np.full(len(items), -1)
    new_item[item_rows] = np.arange(len(item_rows))
    keep = (new_user[inter.users] >= 0) & (new_item[inter.items] >= 0)
    if keep_pairs is not None:
        keep &= keep_pairs

    def pick(values: list, rows: np.ndarray) -> list:
        return [values[r] for r in rows]

    return TenantExport(
        tenant=data.tenant,
        users=Users(ids=users.ids[user_rows],
                    text={k: pick(v, user_rows) for k, v in users.text.items()},
                    multi={k: pick(v, user_rows) for k, v in users.multi.items()},
                    competencies=pick(users.competencies, user_rows)),
        items=Items(keys=pick(items.keys, item_rows), types=items.types[item_rows],
                    numbers=items.numbers[item_rows], tag_names=items.tag_names,
                    tags=items.tags[item_rows], documents=pick(items.documents, item_rows)),
        interactions=Interactions(users=new_user[inter.users[keep]].astype(np.int32),
                                  items=new_item[inter.items[keep]].astype(np.int32),
                                  ratings=inter.ratings[keep],
                                  timestamps=inter.timestamps[keep]),
        fingerprint=f"{data.fingerprint}-{len(user_rows)}-{len(item_rows)}-{int(keep.sum())}")


def saved_model(n_users: int = 37, n_items: int = 53, dim: int = 6, seed: int = 1,
                optimiser_state: bool = True) -> SavedModel:
    """A random saved model with identity features only (one row per user and per item)."""
    rng = np.random.default_rng(seed)
    positives = sp.random(n_users, n_items, density=0.1, random_state=seed, format="csr")
    types = rng.integers(0, len(ITEM_TYPES), n_items).astype(np.uint8)
    types[:5] = np.arange(5)  # every type present
    numbers = np.arange(1, n_items + 1, dtype=np.uint32)
    user_ids = np.arange(1000, 1000 + n_users, dtype=np.int64)
    item_keys = np.asarray([item_key(int(t), int(n)) for t, n in zip(types, numbers,
                                                                      strict=True)])

    def side(names: np.ndarray) -> FeatureParameters:
        rows = len(names)
        state = {p: rng.random((rows, dim) if p.startswith("embedding") else rows)
                 .astype(np.float32) for p in OPTIMISER_STATE} if optimiser_state else {}
        return FeatureParameters(names, rng.normal(size=(rows, dim)).astype(np.float32),
                                 rng.normal(size=rows).astype(np.float32), **state)

    users, items = side(np.asarray([f"user:{u}" for u in user_ids])), side(item_keys)
    return SavedModel(
        user_ids=user_ids, user_emb=users.embeddings, item_keys=item_keys, item_numbers=numbers,
        item_types=types, item_emb=items.embeddings, item_bias=items.biases,
        positives_indptr=positives.indptr.astype(np.int64),
        positives_indices=positives.indices.astype(np.int32),
        popularity=rng.random(n_items).astype(np.float32), user_features=users,
        item_features=items)
