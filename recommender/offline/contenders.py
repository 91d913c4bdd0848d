"""The models an offline evaluation compares, each fitted on a split's training part.

- Production, measured exactly as it trains (``features.build`` + ``train.fit`` with the default
  parameters, early stopping and refit included) and as its lists rank (the layers on top).
- The original service: its parameters (contract §5) and its per-tenant search.
- Baselines: popularity, item-kNN and EASE^R (recommender.offline.baselines).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from recommender.ingest.export import TenantExport
from recommender.model import ensemble, features, train
from recommender.model.ranking import ScoreFn, ranking_report, split_per_user
from recommender.offline import baselines

ORIGINAL_ROUNDS = 30  # the original's simulated annealing rounds (then one refit)

# The original service (contract §5): WARP with adadelta, LightFM's defaults otherwise, L2 1e-3 on
# features (0 in mf). Its epochs and components come from a search per tenant: original_search.
ORIGINAL = train.TrainParams(components=50, loss="warp", learning_schedule="adadelta",
                             item_alpha=1e-3, user_alpha=1e-3, max_sampled=10)


@dataclass
class Fitted:
    name: str
    # "baseline", "model" (a production configuration) or "part" (a production fit without its
    # layers: the same for users without history, so it has no cold-start measure of its own)
    kind: str
    score: ScoreFn
    seconds: float
    cost: int = 0  # epochs x components summed over every LightFM fit; 0 for closed forms
    fits: int = 0
    info: dict = field(default_factory=dict)


def original_params(mode: str, components: int) -> train.TrainParams:
    alpha = 0.0 if mode == "mf" else ORIGINAL.item_alpha
    return replace(ORIGINAL, components=components, item_alpha=alpha, user_alpha=alpha,
                   mf_alpha=alpha, identity_weights=())


def lightfm_scorer(fitted: train.FitResult) -> ScoreFn:
    _, user_emb, item_bias, item_emb = train.representations(fitted.model, fitted.features)
    # The published score: user . item + item bias (recommender.publish.topk).
    return lambda rows: user_emb[rows] @ item_emb.T + item_bias


def production_scorer(fitted: train.FitResult) -> ScoreFn:
    """What the published lists rank by: LightFM with the layers it chose on top."""
    fs = fitted.features
    return ensemble.scorer(lightfm_scorer(fitted), fs.interactions.tocsr(), fs.repeats,
                           fitted.item_item, fitted.blend.weight, fitted.ranker, fs.item_types)


def fit_production(data: TenantExport, mode: str, threads: int,
                   params: train.TrainParams | None = None) -> Fitted:
    return fit_production_and_part(data, mode, threads, params)[0]


def fit_production_and_part(data: TenantExport, mode: str, threads: int,
                            params: train.TrainParams | None = None) -> tuple[Fitted, Fitted]:
    """Production, and its LightFM model alone from the same fit (the layers left out)."""
    params = params or train.TrainParams()
    started = time.perf_counter()
    fitted = train.fit(features.build(data, mode), params, threads)
    seconds = time.perf_counter() - started
    alone = Fitted(f"LightFM {mode} alone (production fit, no layers)", "part",
                   lightfm_scorer(fitted), seconds)
    return _production(fitted, mode, params, seconds), alone


def _production(fitted: train.FitResult, mode: str, params: train.TrainParams,
                seconds: float) -> Fitted:
    blend = fitted.blend
    return Fitted(f"LightFM {mode} (production)", "model", production_scorer(fitted),
                  seconds, fitted.epochs_trained * params.components, len(fitted.candidates) + 1,
                  {"epochs": fitted.epochs, "identity_weight": fitted.identity_weight,
                   "validation_precision_at_10": fitted.validation.get("precision"),
                   "curves": fitted.candidates, "blend_weight": blend.weight,
                   "item_item_lambda": blend.lam, "item_item_neighbours": blend.k,
                   "blend_validation": {k: round(p, 4) for k, p in blend.precision.items()},
                   "reranked": fitted.ranker is not None,
                   "rerank_validation": {k: round(p, 4)
                                         for k, p in fitted.layers.rerank.precision.items()},
                   "seconds": {k: round(v, 2) for k, v in fitted.seconds.items()}})


def original_search(data: TenantExport, mode: str, threads: int, rounds: int = ORIGINAL_ROUNDS,
                    seed: int = 0) -> tuple[int, int, int, list[tuple[int, int, float]]]:
    """The original's tuning: simulated annealing over (epochs 1..20, components 25..100) on the
    AUC of a 20 % split. Returns (epochs, components, cost, history)."""
    fs = features.build(data, mode, identity=False)
    full = fs.interactions.tocsr()
    fit_part, held = split_per_user(full, 0.2, seed)
    weights = sp.coo_matrix(fs.weights.tocsr().multiply(fit_part > 0))
    ones = sp.coo_matrix((np.ones(weights.nnz, np.float32), (weights.row, weights.col)),
                         shape=full.shape)
    rng = np.random.default_rng(seed)
    cost, history = 0, []

    def auc(epochs: int, components: int) -> float:
        nonlocal cost
        cost += epochs * components
        try:
            fitted = train.fit_fixed(fs, original_params(mode, components), epochs,
                                     threads, ones, weights)
        except ValueError:  # LightFM: "model may have diverged"; the original would fail too
            history.append((epochs, components, float("nan")))
            return -1.0
        value = ranking_report(lightfm_scorer(fitted), fit_part, held, (10,),
                               max_users=2000, seed=seed)["auc"]
        history.append((epochs, components, round(float(value), 5)))
        return value

    current = (int(rng.integers(1, 21)), int(rng.integers(25, 101)))
    current_score = auc(*current)
    best, best_score = current, current_score
    for round_ in range(1, rounds):
        temperature = 0.01 * 0.9 ** round_
        proposal = (int(np.clip(current[0] + rng.integers(-3, 4), 1, 20)),
                    int(np.clip(current[1] + rng.integers(-15, 16), 25, 100)))
        score = auc(*proposal)
        if score > current_score or rng.random() < np.exp((score - current_score) / temperature):
            current, current_score = proposal, score
        if score > best_score:
            best, best_score = proposal, score
    return best[0], best[1], cost, history


def fit_original(data: TenantExport, mode: str, threads: int, rounds: int = ORIGINAL_ROUNDS,
                 seed: int = 0, chosen: tuple[int, int] | None = None) -> Fitted:
    """The original service's configuration; ``chosen`` skips the search (epochs, components)."""
    started = time.perf_counter()
    cost, history = 0, []
    if chosen is None:
        epochs, components, cost, history = original_search(data, mode, threads, rounds, seed)
    else:
        epochs, components = chosen
    fs = features.build(data, mode, identity=False)
    info = {"epochs": epochs, "components": components, "search": history}
    try:
        fitted = train.fit_fixed(fs, original_params(mode, components), epochs, threads)
        score = lightfm_scorer(fitted)
    except ValueError as exc:  # diverged: it would recommend nothing useful
        info["failed"] = str(exc)
        n_items = len(data.items)
        score = lambda rows: np.zeros((len(rows), n_items), np.float32)  # noqa: E731
    return Fitted(f"original {mode}", "baseline", score, time.perf_counter() - started,
                  cost + epochs * components, len(history) + 1, info)


def _timed(name: str, make: Callable[[], ScoreFn], info: dict | None = None) -> Fitted:
    started = time.perf_counter()
    score = make()
    return Fitted(name, "baseline", score, time.perf_counter() - started, info=info or {})


def fit_baselines(matrix: sp.csr_matrix, seed: int, lam: float | None = None) -> list[Fitted]:
    models = [_timed("popularity", lambda: baselines.popularity(matrix)),
              _timed("item-kNN", lambda: baselines.item_knn(matrix))]
    if matrix.shape[1] <= baselines.EASE_MAX_ITEMS:
        started = time.perf_counter()
        grid: dict[float, float] = {}
        if lam is None:
            lam, grid = baselines.tune_ease(matrix, seed)
        ease = baselines.ease(matrix, lam)
        models.append(Fitted("EASE^R", "baseline", ease, time.perf_counter() - started,
                             info={"lambda": lam, "validation": grid}))
    started = time.perf_counter()
    (k, near_lam), near_grid = baselines.tune_sparse_ease(matrix, seed)
    models.append(Fitted("EASE^R on neighbours", "baseline",
                         baselines.sparse_ease(matrix, k, near_lam),
                         time.perf_counter() - started,
                         info={"neighbours": k, "lambda": near_lam, "validation": near_grid}))
    return models
