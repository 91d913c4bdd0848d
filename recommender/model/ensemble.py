"""What published lists rank by on top of LightFM, each layer chosen on the validation split.

1. LightFM alone: the only layer for users without history and for the API's fold-in.
2. Its blend with EASE^R (recommender.model.itemitem), if validation P@10 says it helps.
3. The re-ranker over the blend's candidates (recommender.model.rerank), if its cross-fitted
   validation P@10 beats the blend's.

``choose`` runs on the models train.fit fitted on the training part of its split. The item-item
part is then refit on every interaction (``final_item_item``) and ``scorer`` is what both
topk (publication) and evaluate (measurement) rank by, so what is measured is what is published.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recommender.model import itemitem, rerank, rerankfeatures
from recommender.outcome import Say, quiet

ScoreFn = Callable[[np.ndarray], np.ndarray]  # rows -> users x items (recommender.model.ranking)


@dataclass(frozen=True)
class Search:
    """The layers' search space (train.TrainParams carries the defaults)."""

    lambdas: Sequence[float] = itemitem.LAMBDAS
    weights: Sequence[float] = itemitem.WEIGHTS
    max_items: int = itemitem.MAX_ITEMS
    rerank: bool = True
    rerank_users: int = 5000
    seed: int = 42


@dataclass
class Ensemble:
    blend: itemitem.Choice = field(default_factory=lambda: itemitem.Choice(None, 0.0))
    rerank: rerank.Choice = field(default_factory=lambda: rerank.Choice(None))
    # The validation side, for scoring another LightFM model as this ensemble would.
    train_part: sp.csr_matrix | None = None
    repeats: sp.csr_matrix | None = None
    signals: rerankfeatures.Signals | None = None

    def validation_scorer(self, lightfm: ScoreFn) -> ScoreFn:
        """``lightfm`` (scores on the training part) with the chosen layers on top; the
        re-ranker is the cross-fitted pair, so every user is scored out of sample."""
        if self.rerank.ranker is not None:
            assert self.train_part is not None and self.repeats is not None
            assert self.signals is not None
            return rerank.cross_fitted(lightfm, self.train_part, self.repeats, self.signals,
                                       self.rerank.halves)
        return blended(lightfm, self.train_part, self.blend.validation_weights,
                       self.blend.weight)

    def release_validation(self) -> None:
        """Drop the validation side (two items x items matrices) once it has been measured."""
        self.train_part = self.repeats = self.signals = None
        self.blend.validation_weights = None
        self.rerank.halves = []

    def final_item_item(self, interactions: sp.spmatrix) -> np.ndarray | None:
        """The chosen item-item part refit on every interaction (None when not blended)."""
        if self.blend.lam is None or self.blend.weight == 0.0:
            return None
        return itemitem.ease_weights(itemitem.gram(interactions), self.blend.lam)


def blended(lightfm: ScoreFn, history: sp.spmatrix | None, weights: np.ndarray | None,
            weight: float) -> ScoreFn:
    if history is None or weights is None or weight == 0.0:
        return lightfm
    binary = itemitem.binary(history)
    return lambda rows: itemitem.blend(lightfm(rows), binary[rows], weights, weight)


def _signals(history: sp.csr_matrix, repeats: sp.csr_matrix, item_item: np.ndarray,
             weight: float, types: np.ndarray) -> rerankfeatures.Signals:
    """The re-ranker's signals while the item-item part is dense: every pair stored, zeros
    included, in the weights and in their co-occurrence cosine (the dense features exactly)."""
    co = itemitem.gram(history)
    norm = np.sqrt(np.diag(co))
    norm[norm == 0] = 1.0
    n_items = len(co)
    pairs = (np.tile(np.arange(n_items), n_items), np.arange(0, n_items * n_items + 1, n_items))
    weights, cosine = (sp.csr_matrix((np.asarray(dense, np.float32).ravel(), *pairs),
                                     shape=co.shape)
                       for dense in (item_item, co / norm[:, None] / norm[None, :]))
    return rerankfeatures.signals(history, repeats, weights, cosine, weight, types)


def scorer(lightfm: ScoreFn, history: sp.csr_matrix, repeats: sp.csr_matrix | None,
           item_item: np.ndarray | None, weight: float, ranker: rerank.Ranker | None,
           types: np.ndarray) -> ScoreFn:
    """What the published lists rank by, from the final models; ``repeats`` (the rating-1
    pairs) is needed only with a ``ranker``."""
    if ranker is None or item_item is None:
        return blended(lightfm, history, item_item, weight)
    if repeats is None:
        raise ValueError("a re-ranked model needs its rating-1 pairs")
    sig = _signals(history, repeats, item_item, weight, types)
    return lambda rows: ranker.scores(lightfm(rows), history[rows], repeats[rows], sig)


def choose(lightfm: ScoreFn, train_part: sp.csr_matrix, repeats: sp.csr_matrix,
           held_out: sp.csr_matrix, types: np.ndarray, measure: Callable[[ScoreFn], float],
           search: Search, threads: int, say: Say = quiet) -> Ensemble:
    """The layers for ``lightfm`` (fitted on ``train_part``), by ``measure`` on ``held_out``.
    ``repeats`` holds the training part's rating-1 pairs."""
    blend = itemitem.choose(train_part, lightfm, measure, search.lambdas, search.weights,
                            search.max_items, say)
    say("item-item layer: " + (blend.reason or "not used, LightFM alone validates best"
                               if blend.lam is None or blend.weight == 0.0 else
                               f"regularisation {blend.lam:g}, weight {blend.weight:g}"), False)
    if blend.lam is None or blend.weight == 0.0 or not search.rerank:
        return Ensemble(blend, train_part=train_part)
    assert blend.validation_weights is not None
    repeats = sp.csr_matrix(repeats.multiply(train_part > 0))
    repeats.eliminate_zeros()
    repeats = itemitem.binary(repeats)
    say("re-ranker: three LightGBM fits on the validation split (a half of the users each, "
        "cross-fitted, then all)", False)
    sig = _signals(train_part, repeats, blend.validation_weights, blend.weight, types)
    chosen = rerank.choose(lightfm, train_part, repeats, held_out, sig,
                           blend.precision[f"{blend.lam:g}/{blend.weight:g}"], measure, threads,
                           search.seed, search.rerank_users, say)
    say("re-ranker: " + ("kept" if chosen.ranker is not None else f"not used, {chosen.reason}"),
        False)
    return Ensemble(blend, chosen, train_part, repeats, sig)
