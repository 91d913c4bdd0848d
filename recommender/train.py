"""Fit LightFM: one fit with early stopping on validation precision@10, one refit on everything.

The original spends about 31 full fits per tenant (simulated annealing over epochs and
components on AUC). Here epochs are chosen by watching validation precision@10 after every
epoch of a single fit, then the model is refit on all interactions for the best epoch count:
about two fits' worth of work. This is the only module that imports LightFM.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from recommender.features import FeatureSet
from recommender.metrics import ranking_metrics, split_per_user

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, float], None]  # (epoch, validation precision@10)


@dataclass(frozen=True)
class TrainParams:
    components: int = 64
    loss: str = "warp"
    learning_schedule: str = "adagrad"
    learning_rate: float = 0.05
    item_alpha: float = 1e-6
    user_alpha: float = 1e-6
    max_sampled: int = 30
    max_epochs: int = 40
    patience: int = 3  # epochs without improvement before stopping
    validation_fraction: float = 0.2
    validation_users: int = 3000  # users sampled for the per-epoch check
    seed: int = 42


@dataclass
class FitResult:
    model: LightFM
    epochs: int
    validation: dict[str, float]  # precision, recall, ndcg, auc at k=10 on held-out pairs
    curve: list[float] = field(default_factory=list)  # validation precision@10 per epoch
    seconds: dict[str, float] = field(default_factory=dict)


# The original service (contract §5): WARP with adadelta, LightFM's defaults otherwise, L2 1e-3 on
# features (0 in mf). Its epochs and components come from a search per tenant; see
# recommender.evaluate.original_search.
ORIGINAL = TrainParams(components=50, loss="warp", learning_schedule="adadelta",
                       item_alpha=1e-3, user_alpha=1e-3, max_sampled=10)


def original_params(mode: str, components: int) -> TrainParams:
    alpha = 0.0 if mode == "mf" else ORIGINAL.item_alpha
    return replace(ORIGINAL, components=components, item_alpha=alpha, user_alpha=alpha)


def _new_model(params: TrainParams) -> LightFM:
    return LightFM(no_components=params.components, loss=params.loss,
                   learning_schedule=params.learning_schedule,
                   learning_rate=params.learning_rate, item_alpha=params.item_alpha,
                   user_alpha=params.user_alpha, max_sampled=params.max_sampled,
                   random_state=params.seed)


def representations(model: LightFM, fs: FeatureSet) -> tuple[np.ndarray, ...]:
    """(user biases, user embeddings, item biases, item embeddings), features folded in."""
    ub, ue = model.get_user_representations(fs.user_features)
    ib, ie = model.get_item_representations(fs.item_features)
    return (ub.astype(np.float32), ue.astype(np.float32), ib.astype(np.float32),
            ie.astype(np.float32))


def _scorer(model: LightFM, fs: FeatureSet) -> Callable[[np.ndarray], np.ndarray]:
    _, ue, ib, ie = representations(model, fs)
    return lambda rows: ue[rows] @ ie.T + ib


def _restrict(matrix: sp.coo_matrix, mask: sp.csr_matrix) -> sp.coo_matrix:
    return sp.coo_matrix(matrix.tocsr().multiply(mask > 0))


def fit(fs: FeatureSet, params: TrainParams, num_threads: int,
        on_epoch: EpochCallback | None = None) -> FitResult:
    """Early-stopped fit on a per-user split, then a refit on all interactions."""
    seconds: dict[str, float] = {}
    full = fs.interactions.tocsr()
    train_part, held_out = split_per_user(full, params.validation_fraction, params.seed)
    train_weights = _restrict(fs.weights, train_part)
    train_ones = sp.coo_matrix((np.ones(train_weights.nnz, np.float32),
                                (train_weights.row, train_weights.col)), shape=full.shape)
    model = _new_model(params)
    curve: list[float] = []
    best_epoch, best_score, best_model = 0, -1.0, model
    started = time.perf_counter()
    for epoch in range(1, params.max_epochs + 1):
        model.fit_partial(train_ones, user_features=fs.user_features,
                          item_features=fs.item_features, sample_weight=train_weights,
                          epochs=1, num_threads=num_threads)
        metrics = ranking_metrics(_scorer(model, fs), train_part, held_out, k=10,
                                  max_users=params.validation_users, seed=params.seed,
                                  with_auc=False)
        curve.append(metrics["precision"])
        if on_epoch:
            on_epoch(epoch, metrics["precision"])
        if metrics["precision"] > best_score:
            # A snapshot costs one copy of the parameters, far less than refitting to it.
            best_epoch, best_score, best_model = epoch, metrics["precision"], copy.deepcopy(model)
        elif epoch - best_epoch >= params.patience:
            break
    seconds["validation_fit"] = time.perf_counter() - started
    # The reported quality is that of the model stopped at the best epoch.
    started = time.perf_counter()
    best_metrics = ranking_metrics(_scorer(best_model, fs), train_part, held_out, k=10,
                                   max_users=params.validation_users, seed=params.seed)
    seconds["validation_score"] = time.perf_counter() - started
    started = time.perf_counter()
    final = _new_model(params)
    final.fit_partial(fs.interactions, user_features=fs.user_features,
                      item_features=fs.item_features, sample_weight=fs.weights,
                      epochs=max(best_epoch, 1), num_threads=num_threads)
    seconds["refit"] = time.perf_counter() - started
    log.debug("fit %s: best epoch %d, curve %s", asdict(params), best_epoch, curve)
    return FitResult(final, max(best_epoch, 1), best_metrics, curve, seconds)


def fit_fixed(fs: FeatureSet, params: TrainParams, epochs: int, num_threads: int,
              interactions: sp.coo_matrix | None = None,
              weights: sp.coo_matrix | None = None) -> FitResult:
    """A plain fit for a given number of epochs (the original's way), no validation."""
    started = time.perf_counter()
    model = _new_model(params)
    model.fit_partial(fs.interactions if interactions is None else interactions,
                      user_features=fs.user_features, item_features=fs.item_features,
                      sample_weight=fs.weights if weights is None else weights,
                      epochs=epochs, num_threads=num_threads)
    return FitResult(model, epochs, {}, [], {"fit": time.perf_counter() - started})
