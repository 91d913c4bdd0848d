"""What published lists rank by on top of LightFM, each layer chosen on the validation split.

1. LightFM alone: the only layer for users without history and for the API's fold-in.
2. Its blend with EASE^R on each item's neighbours (recommender.model.itemitem, chosen by
   recommender.model.itemsearch), if validation P@10 says it helps.
3. The re-ranker over the blend's candidates (recommender.model.rerank), if its cross-fitted
   validation P@10 beats the blend's.

``choose`` runs on the models train.fit fitted on the training part of its split. The item-item
part is then refit on every interaction (``final_item_item``) and ``scorer`` is what both
topk (publication) and evaluate (measurement) rank by, so what is measured is what is published.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recommender.model import itemitem, itemsearch, rerank, rerankfeatures
from recommender.model.itemitem import ItemItem
from recommender.outcome import Say, quiet

ScoreFn = Callable[[np.ndarray], np.ndarray]  # rows -> users x items (recommender.model.ranking)
# rows -> per item type code: (columns, scores), users x k each, best first
BestFn = Callable[[np.ndarray], dict[int, tuple[np.ndarray, np.ndarray]]]


@dataclass(frozen=True)
class Search:
    """The layers' search space (train.TrainParams carries the defaults)."""

    item_item: itemsearch.Space = itemsearch.Space()
    rerank: bool = True
    rerank_users: int = 5000
    seed: int = 42


@dataclass
class Ensemble:
    blend: itemsearch.Choice = field(default_factory=lambda: itemsearch.Choice(None, None, 0.0))
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
        return blended(lightfm, self.train_part, self.blend.validation_part, self.blend.weight)

    def release_validation(self) -> None:
        """Drop the validation side once it has been measured."""
        self.train_part = self.repeats = self.signals = None
        self.blend.validation_part = None
        self.rerank.halves = []

    def final_item_item(self, interactions: sp.spmatrix, threads: int = 1) -> ItemItem | None:
        """The chosen item-item part refit on every interaction (None when not blended)."""
        if not self.blend.used:
            return None
        assert self.blend.k is not None and self.blend.lam is not None
        setting = (self.blend.k, self.blend.lam)
        return itemsearch.fit_parts(interactions, [setting], threads)[setting]


def blended(lightfm: ScoreFn, history: sp.spmatrix | None, part: ItemItem | None,
            weight: float) -> ScoreFn:
    if history is None or part is None or weight == 0.0:
        return lightfm
    binary = itemitem.binary(history)
    return lambda rows: itemitem.blend(lightfm(rows), binary[rows], part, weight)


def scorer(lightfm: ScoreFn, history: sp.csr_matrix, repeats: sp.csr_matrix | None,
           item_item: ItemItem | None, weight: float, ranker: rerank.Ranker | None,
           types: np.ndarray) -> ScoreFn:
    """What the published lists rank by, from the final models; ``repeats`` (the rating-1
    pairs) is needed only with a ``ranker``."""
    if ranker is None or item_item is None:
        return blended(lightfm, history, item_item, weight)
    repeats, sig = _rerank_inputs(history, repeats, item_item, weight, types)
    return lambda rows: ranker.scores(lightfm(rows), history[rows], repeats[rows], sig)


def _rerank_inputs(history: sp.csr_matrix, repeats: sp.csr_matrix | None, item_item: ItemItem,
                   weight: float, types: np.ndarray
                   ) -> tuple[sp.csr_matrix, rerankfeatures.Signals]:
    """The rating-1 pairs, which a re-ranked model must have, and the re-ranker's signals."""
    if repeats is None:
        raise ValueError("a re-ranked model needs its rating-1 pairs")
    return repeats, rerankfeatures.signals(history, repeats, item_item.weights,
                                           item_item.cosine, weight, types)


def best_lists(lightfm: ScoreFn, history: sp.csr_matrix, repeats: sp.csr_matrix | None,
               item_item: ItemItem | None, weight: float, ranker: rerank.Ranker | None,
               types: np.ndarray, k: int) -> BestFn | None:
    """The ``k`` best items per type by ``scorer``'s scores (per type code: columns and
    scores, best first, seen items -inf at the end), found among the re-ranker's candidates
    without ranking every item; None where that cannot be done (no re-ranker, or ``k`` more
    than the candidates): then rank ``scorer``'s scores."""
    if ranker is None or item_item is None or k > rerankfeatures.CANDIDATES:
        return None
    repeats, sig = _rerank_inputs(history, repeats, item_item, weight, types)
    return lambda rows: ranker.best(lightfm(rows), history[rows], repeats[rows], sig, k)


def choose(lightfm: ScoreFn, train_part: sp.csr_matrix, repeats: sp.csr_matrix,
           held_out: sp.csr_matrix, types: np.ndarray, measure: Callable[[ScoreFn], float],
           quick: Callable[[ScoreFn], float], search: Search, threads: int,
           say: Say = quiet) -> Ensemble:
    """The layers for ``lightfm`` (fitted on ``train_part``), by ``measure`` on ``held_out``
    (``quick`` on a sample of its users ranks the item-item settings). ``repeats`` holds the
    training part's rating-1 pairs."""
    blend = itemsearch.choose(train_part, lightfm, measure, quick, search.item_item, threads,
                              say)
    say("item-item layer: " + (blend.describe() if blend.used else blend.reason), False)
    if not blend.used or not search.rerank:
        return Ensemble(blend, train_part=train_part)
    part = blend.validation_part
    assert part is not None
    repeats = sp.csr_matrix(repeats.multiply(train_part > 0))
    repeats.eliminate_zeros()
    repeats = itemitem.binary(repeats)
    say("re-ranker: three LightGBM fits on the validation split (a half of the users each, "
        "cross-fitted, then all)", False)
    sig = rerankfeatures.signals(train_part, repeats, part.weights, part.cosine, blend.weight,
                                 types)
    # Measured on the sample the blend's settings were ranked on: the users the re-ranker
    # learns from, whose inputs it has already built, so measuring costs predictions only.
    chosen = rerank.choose(lightfm, train_part, repeats, held_out, sig, blend.sampled, quick,
                           threads, search.seed, search.rerank_users, say)
    say("re-ranker: " + ("kept" if chosen.ranker is not None else f"not used, {chosen.reason}"),
        False)
    return Ensemble(blend, chosen, train_part, repeats, sig)
