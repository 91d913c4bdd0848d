"""The validation split a fit is chosen on, and what is measured on it.

A full fit holds out a share of every user's pairs (``ranking.split_per_user``), an incremental
fit a share of the pairs the saved model has not seen (``warmstart.split_new_pairs``). LightFM is
fitted on the rest; the held-out pairs choose the best epoch, the identity share and the layers
on top of LightFM (recommender.model.ensemble), and give the quality reported for the run. The
scores measured here come from recommender.model.train, which owns the LightFM models.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.model import ensemble, itemsearch
from recommender.model.features import FeatureSet
from recommender.model.params import TrainParams
from recommender.model.ranking import ScoreFn, ranking_metrics
from recommender.outcome import Say, quiet

log = logging.getLogger(__name__)


@dataclass
class Validation:
    train_part: sp.csr_matrix  # the pairs fitted on
    held_out: sp.csr_matrix  # the pairs measured on
    ones: sp.coo_matrix  # the training part as LightFM fits it: 1.0 per pair,
    weights: sp.coo_matrix  # weighted by rating
    params: TrainParams  # how many users to measure, the layers' search space, the seed

    @classmethod
    def of(cls, fs: FeatureSet, train_part: sp.csr_matrix, held_out: sp.csr_matrix,
           params: TrainParams) -> Validation:
        weights = sp.coo_matrix(fs.weights.tocsr().multiply(train_part > 0))
        ones = sp.coo_matrix((np.ones(weights.nnz, np.float32), (weights.row, weights.col)),
                             shape=weights.shape)
        return cls(train_part, held_out, ones, weights, params)

    def precision(self, score: ScoreFn) -> float:
        """P@10 on the held-out pairs: the per-epoch check, and the saved model's baseline."""
        return self.quality(score, with_auc=False)["precision"]

    def quality(self, score: ScoreFn, with_auc: bool = True) -> dict[str, float]:
        """Precision, recall, NDCG (and AUC) at 10 on the held-out pairs."""
        return ranking_metrics(score, self.train_part, self.held_out, k=10,
                               max_users=self.params.validation_users, seed=self.params.seed,
                               with_auc=with_auc)

    def choose_layers(self, lightfm: ScoreFn, fs: FeatureSet, num_threads: int,
                      say: Say = quiet) -> ensemble.Ensemble:
        """The layers on top of ``lightfm`` (fitted on the training part) that validate best,
        measured on more users than the per-epoch check: the grid's steps are small."""
        params = self.params

        def on(users: int) -> Callable[[ScoreFn], float]:
            return lambda score: ranking_metrics(
                score, self.train_part, self.held_out, k=10, max_users=users, seed=params.seed,
                with_auc=False)["precision"]

        space = itemsearch.Space(params.item_item_neighbours, params.item_item_lambdas,
                                 params.blend_weights, params.finer_blend_weights,
                                 params.item_item_dense_items)
        search = ensemble.Search(space, params.rerank, params.rerank_users, params.seed)
        layers = ensemble.choose(lightfm, self.train_part, fs.repeats, self.held_out,
                                 fs.item_types, on(params.blend_validation_users),
                                 on(params.layer_search_users), search, num_threads, say)
        for reason in (layers.blend.reason, layers.rerank.reason):
            if reason:
                log.info("layers on top of LightFM: %s", reason)
        return layers
