"""The lists of a saved model, computed (recommender.publish.topk): when a version is saved,
and by ``restore`` for a model saved before its lists were kept beside it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator

import numpy as np
import scipy.sparse as sp

from published.savedmodel import Blend, SavedModel
from recommender.model import neighbours, rerank
from recommender.model.itemitem import ItemItem
from recommender.outcome import Say, quiet
from recommender.publish import topk
from recommender.publish.listsfile import Lists
from recommender.publish.neartop import NearTop


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
        item_item=None if blend is None else item_item_part(blend, positives),
        blend_weight=0.0 if blend is None else blend.weight, ranker=ranker, repeats=repeats)


def item_item_part(blend: Blend, positives: sp.csr_matrix) -> ItemItem:
    """The saved part as the scorer takes it; a model saved with a dense part has no cosine
    stored, so it is computed from the interactions for the stored pairs."""
    n = len(blend.indptr) - 1
    weights = sp.csr_matrix((blend.weights, blend.indices, blend.indptr), shape=(n, n))
    cosine = blend.cosine
    if cosine is None:
        rows = np.repeat(np.arange(n), np.diff(blend.indptr))
        cosine = neighbours.cosine_at(neighbours.gram(positives), rows, blend.indices)
    return ItemItem(weights, sp.csr_matrix((cosine, blend.indices, blend.indptr), shape=(n, n)))


def lists(model: SavedModel, top_k: int, threads: int = 1,
          batches: Callable[[Iterator[list]], Iterable[list]] = iter,
          say: Say = quiet) -> Lists:
    """The model's lists, the user and item lists computed batch by batch as they are read.

    ``batches`` wraps the batch generators, so a benchmark can time the precompute apart from
    what is done with the lists; ``say`` hears how far each has got.
    """
    emb = embeddings(model, threads)
    near_top = NearTop(model.item_types, model.item_numbers)
    users = near_top.watch(_counted(topk.user_lists(emb, top_k), say, "user lists",
                                    len(model.user_ids)))
    items = _counted(topk.similar_lists(emb, top_k), say, "similar-item lists",
                     len(model.item_numbers))
    return Lists(top_k, topk.popular_lists(emb, top_k), batches(users), batches(items),
                 near_top)


def _counted(batches: Iterator[list], say: Say, kind: str, total: int,
             every: float = 1.0) -> Iterator[list]:
    """``batches`` as they are, saying how far they have got at most every ``every`` seconds
    (and at the end)."""
    done, said = 0, time.monotonic()
    say(f"precompute {kind}: 0 of {total}", True)
    for batch in batches:
        done += len(batch)
        if done >= total or time.monotonic() - said >= every:
            said = time.monotonic()
            say(f"precompute {kind}: {done} of {total}", True)
        yield batch

