"""The lists of a saved model, computed (recommender.publish.topk): when a version is saved,
and by ``restore`` for a model saved before its lists were kept beside it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import scipy.sparse as sp

from published.savedmodel import SavedModel
from recommender.model import rerank
from recommender.publish import topk
from recommender.publish.listsfile import Lists


def embeddings(model: SavedModel, threads: int = 1) -> topk.Embeddings:
    """What precompute needs; ``threads`` is the re-ranker's."""
    n_users, n_items = len(model.user_ids), len(model.item_numbers)
    positives = sp.csr_matrix(
        (np.ones(len(model.positives_indices), np.float32), model.positives_indices,
         model.positives_indptr), shape=(n_users, n_items))
    ranker, repeats = None, None
    if model.rerank is not None:
        ranker = rerank.Ranker.from_array(model.rerank.ranker, threads)
        # Copies of the index arrays: eliminate_zeros works in place, and positives share them.
        repeats = sp.csr_matrix(
            (model.rerank.positives_repeats.astype(np.float32), model.positives_indices.copy(),
             model.positives_indptr.copy()), shape=(n_users, n_items))
        repeats.eliminate_zeros()
    blend = model.blend
    return topk.Embeddings(
        user_ids=model.user_ids, user_emb=model.user_emb, item_keys=model.item_keys.tolist(),
        item_numbers=model.item_numbers, item_types=model.item_types, item_emb=model.item_emb,
        item_bias=model.item_bias, positives=positives, popularity=model.popularity,
        item_item=None if blend is None else blend.item_item,
        blend_weight=0.0 if blend is None else blend.weight, ranker=ranker, repeats=repeats)


def lists(model: SavedModel, top_k: int, threads: int = 1,
          batches: Callable[[Iterator[list]], Iterable[list]] = iter) -> Lists:
    """The model's lists, the user and item lists computed batch by batch as they are read.

    ``batches`` wraps the batch generators, so a benchmark can time the precompute apart from
    what is done with the lists.
    """
    emb = embeddings(model, threads)
    return Lists(top_k, topk.popular_lists(emb, top_k), batches(topk.user_lists(emb, top_k)),
                 batches(topk.similar_lists(emb, top_k)))
