"""The saved model of a fit (published.savedmodel): what a run writes to ML_MODELS_DIR and
publishes from, so a fresh run and ``restore`` publish the same way."""

from __future__ import annotations

import numpy as np

from published.savedmodel import (
    PARAMETERS,
    Blend,
    FeatureParameters,
    Rerank,
    SavedModel,
)
from recommender.ingest.export import TenantExport
from recommender.model import rerank
from recommender.model.features import FeatureSet
from recommender.model.itemitem import ItemItem
from recommender.model.train import LightFM, representations


def saved_model(data: TenantExport, model: LightFM, fs: FeatureSet,
                item_item: ItemItem | None = None, blend_weight: float = 0.0,
                ranker: rerank.Ranker | None = None) -> SavedModel:
    """The tenant's model; ``item_item`` (with its ``blend_weight``) when the lists blend it,
    ``ranker`` when they are re-ranked."""
    _, user_emb, item_bias, item_emb = representations(model, fs)
    positives = fs.interactions.tocsr()
    popularity = np.diff(positives.tocsc().indptr).astype(np.float32) / max(len(data.users), 1)
    user_names = fs.user_feature_names or [f"user:{u}" for u in data.users.ids]
    item_names = fs.item_feature_names or list(data.items.keys)
    blend = None
    if item_item is not None and blend_weight != 0.0:
        weights = item_item.weights
        blend = Blend(weights.indptr.astype(np.int64), weights.indices.astype(np.int32),
                      weights.data.astype(np.float32), item_item.cosine.data.astype(np.float32),
                      blend_weight)
    reranked = None
    if blend is not None and ranker is not None:
        rows = np.repeat(np.arange(positives.shape[0]), np.diff(positives.indptr))
        repeated = np.asarray(fs.repeats.tocsr()[rows, positives.indices]).ravel()
        reranked = Rerank(ranker.as_array(), repeated.astype(np.uint8))
    return SavedModel(
        user_ids=data.users.ids.astype(np.int64), user_emb=user_emb,
        item_keys=np.asarray(data.items.keys, dtype=str),
        item_numbers=data.items.numbers.astype(np.uint32),
        item_types=data.items.types.astype(np.uint8), item_emb=item_emb, item_bias=item_bias,
        positives_indptr=positives.indptr.astype(np.int64),
        positives_indices=positives.indices.astype(np.int32), popularity=popularity,
        user_features=_parameters(model, "user", user_names),
        item_features=_parameters(model, "item", item_names),
        blend=blend, rerank=reranked)


def _parameters(model: LightFM, side: str, names: list[str]) -> FeatureParameters:
    """LightFM's own parameters per feature and optimiser state, for incremental fits
    (recommender.model.warmstart) and the API's feature fold-in."""
    return FeatureParameters(np.asarray(names, dtype=str),
                             **{p: getattr(model, f"{side}_{p}").astype(np.float32)
                                for p in PARAMETERS})
