"""What a fit tells the run's result and the version's meta: its quality, its kind (full or
incremental) and the layers validation chose. Light: the fit's types are only named."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from published.runs import Fit, RunMeta
from recommender.outcome import TenantResult

if TYPE_CHECKING:
    from recommender.model.params import TrainParams
    from recommender.model.train import FitResult
    from recommender.model.warmstart import WarmStart

log = logging.getLogger("recommender.pipeline")


def describe_fit(result: TenantResult, meta: RunMeta, fitted: FitResult,
                 warm: WarmStart | None, params: TrainParams) -> None:
    """What the fit gives the run's result and the version's meta."""
    result.epochs, result.components = fitted.epochs, params.components
    result.metrics = {"precision_at_10": fitted.validation["precision"],
                      "recall_at_10": fitted.validation["recall"],
                      "ndcg_at_10": fitted.validation["ndcg"],
                      "auc": fitted.validation["auc"]}
    meta.epochs, meta.components = fitted.epochs, params.components
    meta.epochs_trained = fitted.epochs_trained
    quality = {k: round(v, 6) for k, v in result.metrics.items()}
    meta.precision_at_10, meta.recall_at_10 = quality["precision_at_10"], quality["recall_at_10"]
    meta.ndcg_at_10, meta.auc = quality["ndcg_at_10"], quality["auc"]
    if warm is not None:  # fit_incremental succeeded: it always measures the baseline
        log.info("tenant %s: incremental fit from %s, validation P@10 %.4f on %d new pairs "
                 "(saved model: %.4f)", result.tenant, warm.source_version,
                 result.metrics["precision_at_10"], fitted.held_out_pairs, fitted.warm_baseline)
        result.metrics["warm_baseline_precision_at_10"] = fitted.warm_baseline
        meta.fit, meta.incremental_from = Fit.INCREMENTAL, warm.source_version
        meta.incremental_runs, meta.validation_pairs = warm.runs + 1, "new"
        meta.warm_baseline_precision_at_10 = round(fitted.warm_baseline, 6)
        meta.full_fit_precision_at_10 = warm.full_fit_precision
    else:
        meta.fit, meta.incremental_runs, meta.validation_pairs = Fit.FULL, 0, "random"
        meta.full_fit_precision_at_10 = meta.precision_at_10
    # The identity feature's share chosen on validation, for diagnosis (None: no such feature).
    meta.identity_weight = fitted.identity_weight
    if fitted.item_item is not None:
        meta.blend_weight, meta.item_item_lambda = fitted.blend.weight, fitted.blend.lam
        meta.item_item_neighbours = fitted.blend.k
        meta.reranked = int(fitted.ranker is not None)
        meta.rerank_validation = {k: round(v, 6)
                                  for k, v in fitted.layers.rerank.precision.items()}
    meta.params = dict(params.__dict__)
