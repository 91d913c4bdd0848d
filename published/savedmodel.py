"""The saved model: what a trained tenant is made of, and the only place its field names live.

Training builds it (recommender.model.saving), ``ML_MODELS_DIR`` keeps it as ``.npz`` arrays
(recommender.publish.modelfile, through ``to_arrays``/``from_arrays``), warm starts carry its
LightFM parameters over (recommender.model.warmstart), and the ``model`` hash published to Redis
for the API's fold-in is encoded and decoded here (docs/redis-keys.md). Numpy only: the API
imports the decoding.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

# LightFM's parameters per feature row (``<side>_<parameter>`` on its model) and the optimiser
# state next to them; the saved momentum is only used by adadelta.
SIDES = ("user", "item")
PARAMETERS = ("embeddings", "biases", "embedding_gradients", "bias_gradients",
              "embedding_momentum", "bias_momentum")
OPTIMISER_STATE = PARAMETERS[2:]
# The fields of the ``model`` hash the API's fold-in reads.
FOLDIN_FIELDS = ("shape", "item_numbers", "item_types", "item_embeddings", "item_biases")


def saved_name(side: str, parameter: str) -> str:
    """The parameter's name in the saved .npz (the embeddings predate incremental training)."""
    if parameter in ("embeddings", "biases"):
        return f"{side}_feature_{parameter}"
    return f"{side}_{parameter}"


@dataclass
class FeatureParameters:
    """One side's LightFM feature rows: their names, parameters and optimiser state (the state
    is None in models saved before incremental training)."""

    names: np.ndarray  # str, the feature of each row (``user:<id>``, an item key, a tag, ...)
    embeddings: np.ndarray  # float32 features x dim
    biases: np.ndarray  # float32 features
    embedding_gradients: np.ndarray | None = None
    bias_gradients: np.ndarray | None = None
    embedding_momentum: np.ndarray | None = None
    bias_momentum: np.ndarray | None = None

    @property
    def has_optimiser_state(self) -> bool:
        return all(getattr(self, p) is not None for p in OPTIMISER_STATE)

    def by_parameter(self) -> dict[str, np.ndarray]:
        """Every parameter present, by LightFM's name for it (``PARAMETERS``)."""
        return {p: getattr(self, p) for p in PARAMETERS if getattr(self, p) is not None}


@dataclass
class Blend:
    """The item-item part blended into warm users' lists (recommender.model.itemitem): CSR
    items x items, row h holding what history item h adds to each candidate it is stored for,
    and the cosine of the same pairs (None in models saved with a dense part: recomputed)."""

    indptr: np.ndarray  # int64 items + 1
    indices: np.ndarray  # int32 per stored pair
    weights: np.ndarray  # float32 per stored pair
    cosine: np.ndarray | None
    weight: float

    @classmethod
    def from_dense(cls, matrix: np.ndarray, weight: float) -> Blend:
        """A model saved before the sparse part: every non-zero pair kept."""
        rows, cols = np.nonzero(matrix)
        indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=len(matrix)))]
        return cls(indptr.astype(np.int64), cols.astype(np.int32),
                   matrix[rows, cols].astype(np.float32), None, weight)

    def check(self, n_items: int) -> None:
        """Raise ValueError unless the arrays make an items x items CSR."""
        if (self.indptr.shape != (n_items + 1,) or self.indptr[0] != 0
                or np.any(np.diff(self.indptr) < 0) or self.indptr[-1] != len(self.indices)
                or len(self.weights) != len(self.indices)
                or (self.cosine is not None and len(self.cosine) != len(self.indices))
                or (len(self.indices) and not 0 <= self.indices.min() <= self.indices.max()
                    < n_items)):
            raise ValueError("the item-item part is not an items x items sparse matrix")

    def __post_init__(self) -> None:
        # The file holds the weight as float32: a fresh model computes its lists with the
        # weight a restored one will read back.
        self.weight = float(np.float32(self.weight))


@dataclass
class Rerank:
    """The re-ranker over the blend's candidates (recommender.model.rerank)."""

    ranker: np.ndarray  # uint8: LightGBM's own text model
    positives_repeats: np.ndarray  # uint8 per stored positive, in its order: 1 for rating 1


@dataclass
class SavedModel:
    """A trained tenant: rows of users and items, what the lists are computed from, and the
    LightFM parameters per feature for warm starts and fold-in."""

    user_ids: np.ndarray  # int64, row i = user i
    user_emb: np.ndarray  # float32 users x dim, features folded in
    item_keys: np.ndarray  # str
    item_numbers: np.ndarray  # uint32
    item_types: np.ndarray  # uint8
    item_emb: np.ndarray  # float32 items x dim, features folded in
    item_bias: np.ndarray  # float32 items
    positives_indptr: np.ndarray  # int64: CSR users x items of the interactions
    positives_indices: np.ndarray  # int32
    popularity: np.ndarray  # float32 items: share of users who interacted
    user_features: FeatureParameters
    item_features: FeatureParameters
    blend: Blend | None = None
    rerank: Rerank | None = None  # only with a blend

    def features(self, side: str) -> FeatureParameters:
        return self.user_features if side == "user" else self.item_features

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The ``.npz`` arrays, named and ordered as every version of the file has them."""
        arrays: dict[str, np.ndarray] = {}
        if self.blend is not None:
            arrays.update(item_item_indptr=self.blend.indptr,
                          item_item_indices=self.blend.indices,
                          item_item_data=self.blend.weights,
                          blend_weight=np.asarray(self.blend.weight, np.float32))
            if self.blend.cosine is not None:
                arrays.update(item_item_cosine=self.blend.cosine)
            if self.rerank is not None:
                arrays.update(ranker=self.rerank.ranker,
                              positives_repeats=self.rerank.positives_repeats)
        arrays.update({name: getattr(self, name) for name in _ROWS})
        for side in SIDES:
            for parameter, array in self.features(side).by_parameter().items():
                arrays[saved_name(side, parameter)] = array
        arrays.update(user_feature_names=self.user_features.names,
                      item_feature_names=self.item_features.names)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> SavedModel:
        """The model of a ``.npz``; raises KeyError when a part every model has is missing."""
        blend = rerank = None
        if "item_item_indptr" in arrays:
            blend = Blend(arrays["item_item_indptr"], arrays["item_item_indices"],
                          arrays["item_item_data"], arrays.get("item_item_cosine"),
                          float(arrays["blend_weight"]))
            blend.check(len(arrays["item_numbers"]))
        elif "item_item" in arrays:
            blend = Blend.from_dense(arrays["item_item"], float(arrays["blend_weight"]))
        if blend is not None:
            if "ranker" in arrays:
                rerank = Rerank(arrays["ranker"], arrays["positives_repeats"])
        sides = {side: FeatureParameters(
            arrays[f"{side}_feature_names"],
            **{p: arrays.get(saved_name(side, p)) for p in PARAMETERS}) for side in SIDES}
        for side, parameters in sides.items():
            for required in ("embeddings", "biases"):
                if getattr(parameters, required) is None:
                    raise KeyError(saved_name(side, required))
        return cls(**{name: arrays[name] for name in _ROWS}, user_features=sides["user"],
                   item_features=sides["item"], blend=blend, rerank=rerank)

    def model_hash(self) -> dict[str, bytes]:
        """The ``model`` hash the API reads for real-time scoring (docs/redis-keys.md)."""
        users = self.user_features
        shape = {"n_items": int(self.item_emb.shape[0]), "dim": int(self.item_emb.shape[1]),
                 "n_user_features": int(users.embeddings.shape[0])}
        return {
            "shape": json.dumps(shape).encode(),
            "item_numbers": self.item_numbers.astype("<u4").tobytes(),
            "item_types": self.item_types.astype("u1").tobytes(),
            "item_embeddings": self.item_emb.astype("<f4").tobytes(),
            "item_biases": self.item_bias.astype("<f4").tobytes(),
            "user_feature_embeddings": users.embeddings.astype("<f4").tobytes(),
            "user_feature_biases": users.biases.astype("<f4").tobytes(),
            "user_feature_names": json.dumps(users.names.tolist()).encode(),
        }


_ROWS = ("user_ids", "user_emb", "item_keys", "item_numbers", "item_types", "item_emb",
         "item_bias", "positives_indptr", "positives_indices", "popularity")


@dataclass
class ItemVectors:
    """The item side of a published ``model`` hash: what fold-in scores with."""

    numbers: np.ndarray  # uint32
    types: np.ndarray  # uint8
    embeddings: np.ndarray  # float32 items x dim
    biases: np.ndarray  # float32 items

    @classmethod
    def from_model_hash(cls, fields: Mapping[str, Any]) -> ItemVectors | None:
        """Decode the ``FOLDIN_FIELDS`` of the hash; None when absent or inconsistent."""
        if any(fields.get(name) is None for name in FOLDIN_FIELDS):
            return None
        try:
            shape = json.loads(fields["shape"])
            n, dim = int(shape["n_items"]), int(shape["dim"])
            numbers = np.frombuffer(fields["item_numbers"], dtype="<u4", count=n)
            types = np.frombuffer(fields["item_types"], dtype="u1", count=n)
            embeddings = np.frombuffer(fields["item_embeddings"], dtype="<f4",
                                       count=n * dim).reshape(n, dim)
            biases = np.frombuffer(fields["item_biases"], dtype="<f4", count=n)
        except (ValueError, KeyError, TypeError):
            return None
        return cls(numbers, types, embeddings, biases)
