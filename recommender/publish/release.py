"""The arrays a trained tenant is made of, and their publication to Redis.

``saved_arrays`` is the one representation of a trained tenant: it is written to ML_MODELS_DIR
(publish.modelfile) and published from, so a fresh run and ``restore`` publish the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import redis
import scipy.sparse as sp

from published import versions
from recommender.ingest.export import TenantExport
from recommender.model import rerank
from recommender.model.features import FeatureSet
from recommender.model.train import LightFM, parameter_arrays, representations
from recommender.publish import topk


def saved_arrays(data: TenantExport, model: LightFM, fs: FeatureSet,
                 item_item: np.ndarray | None = None, blend_weight: float = 0.0,
                 ranker: rerank.Ranker | None = None) -> dict[str, np.ndarray]:
    """The tenant's arrays; ``item_item`` (with its ``blend_weight``) when the lists blend it,
    ``ranker`` when they are re-ranked."""
    _, user_emb, item_bias, item_emb = representations(model, fs)
    positives = fs.interactions.tocsr()
    popularity = np.diff(positives.tocsc().indptr).astype(np.float32) / max(len(data.users), 1)
    user_names = fs.user_feature_names or [f"user:{u}" for u in data.users.ids]
    item_names = fs.item_feature_names or list(data.items.keys)
    blend = ({} if item_item is None or blend_weight == 0.0 else
             {"item_item": item_item.astype(np.float32),
              "blend_weight": np.asarray(blend_weight, np.float32)})
    if blend and ranker is not None:
        rows = np.repeat(np.arange(positives.shape[0]), np.diff(positives.indptr))
        repeated = np.asarray(fs.repeats.tocsr()[rows, positives.indices]).ravel()
        # Per stored positive, in its order: 1 where the pair has rating 1.
        blend.update(ranker=ranker.as_array(), positives_repeats=repeated.astype(np.uint8))
    return {
        **blend,
        "user_ids": data.users.ids.astype(np.int64),
        "user_emb": user_emb,
        "item_keys": np.asarray(data.items.keys, dtype=str),
        "item_numbers": data.items.numbers.astype(np.uint32),
        "item_types": data.items.types.astype(np.uint8),
        "item_emb": item_emb,
        "item_bias": item_bias,
        "positives_indptr": positives.indptr.astype(np.int64),
        "positives_indices": positives.indices.astype(np.int32),
        "popularity": popularity,
        # LightFM's own parameters per feature and optimiser state, for incremental fits
        # (recommender.model.warmstart) and the API's feature fold-in.
        **parameter_arrays(model),
        "user_feature_names": np.asarray(user_names, dtype=str),
        "item_feature_names": np.asarray(item_names, dtype=str),
    }


def embeddings(arrays: dict[str, np.ndarray], threads: int = 1) -> topk.Embeddings:
    n_users, n_items = len(arrays["user_ids"]), len(arrays["item_numbers"])
    positives = sp.csr_matrix(
        (np.ones(len(arrays["positives_indices"]), np.float32), arrays["positives_indices"],
         arrays["positives_indptr"]), shape=(n_users, n_items))
    ranker, repeats = None, None
    if "ranker" in arrays:
        ranker = rerank.Ranker.from_array(arrays["ranker"], threads)
        # Copies of the index arrays: eliminate_zeros works in place, and positives share them.
        repeats = sp.csr_matrix(
            (arrays["positives_repeats"].astype(np.float32), arrays["positives_indices"].copy(),
             arrays["positives_indptr"].copy()), shape=(n_users, n_items))
        repeats.eliminate_zeros()
    return topk.Embeddings(
        user_ids=arrays["user_ids"], user_emb=arrays["user_emb"],
        item_keys=arrays["item_keys"].tolist(), item_numbers=arrays["item_numbers"],
        item_types=arrays["item_types"], item_emb=arrays["item_emb"],
        item_bias=arrays["item_bias"], positives=positives, popularity=arrays["popularity"],
        item_item=arrays.get("item_item"), blend_weight=float(arrays.get("blend_weight", 0.0)),
        ranker=ranker, repeats=repeats)


def model_hash(arrays: dict[str, np.ndarray]) -> dict[str, bytes]:
    """The ``model`` hash the API reads for real-time scoring (docs/redis-keys.md)."""
    item_emb = arrays["item_emb"]
    shape = {"n_items": int(item_emb.shape[0]), "dim": int(item_emb.shape[1]),
             "n_user_features": int(arrays["user_feature_embeddings"].shape[0])}
    return {
        "shape": json.dumps(shape).encode(),
        "item_numbers": arrays["item_numbers"].astype("<u4").tobytes(),
        "item_types": arrays["item_types"].astype("u1").tobytes(),
        "item_embeddings": item_emb.astype("<f4").tobytes(),
        "item_biases": arrays["item_bias"].astype("<f4").tobytes(),
        "user_feature_embeddings": arrays["user_feature_embeddings"].astype("<f4").tobytes(),
        "user_feature_biases": arrays["user_feature_biases"].astype("<f4").tobytes(),
        "user_feature_names": json.dumps(arrays["user_feature_names"].tolist()).encode(),
    }


def publish_arrays(client: redis.Redis, tenant: str, version: str,
                   arrays: dict[str, np.ndarray], meta: dict[str, Any], top_k: int,
                   batches: Callable[[Iterator[list]], Iterable[list]] = iter,
                   threads: int = 1) -> None:
    """Write a whole version and switch to it; on any error the partial version is removed.

    ``batches`` wraps the batch generators of the lists, so a benchmark can time the
    precompute apart from the writes of this same code. ``threads`` is the re-ranker's.
    """
    writer = versions.VersionWriter(client, tenant, version)
    try:
        if arrays:
            emb = embeddings(arrays, threads)
            writer.write_model(model_hash(arrays))
            writer.write_popular(topk.popular_lists(emb, top_k))
            for batch in batches(topk.user_lists(emb, top_k)):
                writer.write_users(batch)
            for batch in batches(topk.similar_lists(emb, top_k)):
                writer.write_items(batch)
        scalars = {k: v for k, v in meta.items() if isinstance(v, str | int | float)}
        writer.commit(scalars)
    except versions.StaleVersionError:
        raise
    except BaseException:
        writer.abort()
        raise
