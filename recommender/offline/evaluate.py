"""Offline evaluation: production training against baselines on the same held-out interactions.

One run splits a tenant's interactions (per user, a random 20 % or the most recent 20 %), trains
every model on the training part and measures them on the held-out part, overall and per item
type. Production is measured exactly as it trains (``features.build`` + ``train.fit`` with the
default parameters, early stopping and refit included). A second split holds out whole users and
whole items (all of their interactions) to measure cold start: only models that use features can
rank those. Reports are rendered by recommender.offline.evalreport.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from recommender.ingest.export import Interactions, TenantExport
from recommender.model import ensemble, features, train
from recommender.model.ranking import ScoreFn, holdout_mask, ranking_report, split_per_user
from recommender.offline import baselines
from runtime.items import ITEM_TYPES

log = logging.getLogger(__name__)

PROTOCOLS = ("random", "time")
ORIGINAL_ROUNDS = 30  # the original's simulated annealing rounds (then one refit)


@dataclass
class Split:
    protocol: str
    train: TenantExport  # the export with only the training interactions
    test: sp.csr_matrix  # users x items, 1 per held-out pair
    cold_users: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    cold_items: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    def train_matrix(self) -> sp.csr_matrix:
        inter = self.train.interactions
        return _matrix(inter.users, inter.items, self.test.shape)


@dataclass
class Fitted:
    name: str
    kind: str  # "baseline" or "model" (a production configuration)
    score: ScoreFn
    seconds: float
    cost: int = 0  # epochs x components summed over every LightFM fit; 0 for closed forms
    fits: int = 0
    info: dict = field(default_factory=dict)


def _matrix(users: np.ndarray, items: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    matrix = sp.csr_matrix((np.ones(len(users), np.float32), (users, items)), shape=shape)
    matrix.data[:] = 1.0
    return matrix


def keep_interactions(data: TenantExport, keep: np.ndarray) -> TenantExport:
    """The export with only the interactions where ``keep`` is true."""
    inter = data.interactions
    kept = Interactions(inter.users[keep], inter.items[keep], inter.ratings[keep],
                        inter.timestamps[keep])
    return replace(data, interactions=kept, fingerprint=f"{data.fingerprint}:train")


def split(data: TenantExport, protocol: str = "random", fraction: float = 0.2,
          seed: int = 0) -> Split:
    """Per user, hold out ``fraction`` of the pairs: random ones, or the most recent ones."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}")
    inter = data.interactions
    jitter = np.random.default_rng(seed).random(len(inter))
    # Ties in time (same second) are broken at random rather than by file order.
    order = jitter if protocol == "random" else inter.timestamps + 0.5 * jitter
    test = holdout_mask(inter.users, order, fraction)
    shape = (len(data.users), len(data.items))
    held_out = _matrix(inter.users[test], inter.items[test], shape)
    return Split(protocol, keep_interactions(data, ~test), held_out)


def cold_split(data: TenantExport, fraction: float = 0.1, seed: int = 0) -> Split:
    """Hold out every interaction of a random ``fraction`` of the users and of the items."""
    inter = data.interactions
    rng = np.random.default_rng(seed + 7)
    active_users = np.unique(inter.users)
    cold_users = np.sort(rng.choice(active_users, int(len(active_users) * fraction),
                                    replace=False))
    active_items = np.unique(inter.items)
    cold_items = np.zeros(len(data.items), bool)
    cold_items[rng.choice(active_items, int(len(active_items) * fraction), replace=False)] = True
    test = np.isin(inter.users, cold_users) | cold_items[inter.items]
    shape = (len(data.users), len(data.items))
    held_out = _matrix(inter.users[test], inter.items[test], shape)
    return Split("cold", keep_interactions(data, ~test), held_out, cold_users, cold_items)


# ----------------------------------------------------------------------------------- models


def lightfm_scorer(fitted: train.FitResult, fs: features.FeatureSet) -> ScoreFn:
    _, user_emb, item_bias, item_emb = train.representations(fitted.model, fs)
    # The published score: user . item + item bias (recommender.publish.topk).
    return lambda rows: user_emb[rows] @ item_emb.T + item_bias


def production_scorer(fitted: train.FitResult, fs: features.FeatureSet) -> ScoreFn:
    """What the published lists rank by: LightFM with the layers it chose on top."""
    return ensemble.scorer(lightfm_scorer(fitted, fs), fs.interactions.tocsr(), fs.repeats,
                           fitted.item_item, fitted.blend.weight, fitted.ranker, fs.item_types)


def fit_production(data: TenantExport, mode: str, threads: int,
                   params: train.TrainParams | None = None) -> Fitted:
    params = params or train.TrainParams()
    started = time.perf_counter()
    fs = features.build(data, mode)
    fitted = train.fit(fs, params, threads)
    seconds = time.perf_counter() - started
    blend = fitted.blend
    return Fitted(f"LightFM {mode} (production)", "model", production_scorer(fitted, fs),
                  seconds, fitted.epochs_trained * params.components, len(fitted.candidates) + 1,
                  {"epochs": fitted.epochs, "identity_weight": fitted.identity_weight,
                   "validation_precision_at_10": fitted.validation.get("precision"),
                   "curves": fitted.candidates, "blend_weight": blend.weight,
                   "item_item_lambda": blend.lam,
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
            fitted = train.fit_fixed(fs, train.original_params(mode, components), epochs,
                                     threads, ones, weights)
        except ValueError:  # LightFM: "model may have diverged"; the original would fail too
            history.append((epochs, components, float("nan")))
            return -1.0
        value = ranking_report(lightfm_scorer(fitted, fs), fit_part, held, (10,),
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
        fitted = train.fit_fixed(fs, train.original_params(mode, components), epochs, threads)
        score = lightfm_scorer(fitted, fs)
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
    return models


# ------------------------------------------------------------------------------- measuring


def measure_warm(model: Fitted, part: Split, ks: tuple[int, ...]) -> dict:
    matrix = part.train_matrix()
    result = {"overall": ranking_report(model.score, matrix, part.test, ks), "types": {}}
    types = part.train.items.types
    for code, name in enumerate(ITEM_TYPES):
        report = ranking_report(model.score, matrix, part.test, (10,), candidates=types == code,
                                with_auc=False)
        if report["users"]:
            result["types"][name] = {"users": report["users"], **report["at"][10]}
    return result


def measure_cold(model: Fitted, part: Split) -> dict:
    matrix = part.train_matrix()
    users = ranking_report(model.score, matrix, part.test, (10,), users=part.cold_users)
    warm_users = np.setdiff1d(np.arange(matrix.shape[0]), part.cold_users)
    items = ranking_report(model.score, matrix, part.test, (10,), candidates=part.cold_items,
                           users=warm_users)
    # Lists are per type, so what a user is shown is the ranking within a type: measured too,
    # as the mean over (user, type) pairs of the ranking among the type's cold items.
    users_per_type, precision, auc = [], [], []
    for code in range(len(ITEM_TYPES)):
        report = ranking_report(model.score, matrix, part.test, (10,),
                                candidates=part.cold_items & (part.train.items.types == code),
                                users=warm_users)
        if report["users"]:
            users_per_type.append(report["users"])
            precision.append(report["at"][10]["precision"])
            auc.append(report["auc"])
    share = np.asarray(users_per_type, float) / max(sum(users_per_type), 1)
    return {"users": {"users": users["users"], "auc": users["auc"], **users["at"][10]},
            "items": {"users": items["users"], "candidates": items["candidates"],
                      "auc": items["auc"], **items["at"][10]},
            "items_within_type": {"pairs": int(sum(users_per_type)),
                                  "precision": float(share @ np.asarray(precision)),
                                  "auc": float(share @ np.asarray(auc))}}


def run(data: TenantExport, *, protocol: str = "random", ks: tuple[int, ...] = (5, 10, 25),
        modes: tuple[str, ...] = ("hybrid",), threads: int = 2, seed: int = 0,
        original_rounds: int = ORIGINAL_ROUNDS, cold_fraction: float = 0.1,
        params: train.TrainParams | None = None) -> dict:
    """Evaluate every model on one tenant; the result is what evalreport renders."""
    ks = tuple(sorted(set(ks) | {10}))
    warm = split(data, protocol, 0.2, seed)
    matrix = warm.train_matrix()
    models = fit_baselines(matrix, seed)
    lam = next((m.info["lambda"] for m in models if m.name == "EASE^R"), None)
    for mode in modes:
        log.info("original %s: %d rounds of search", mode, original_rounds)
        if original_rounds > 0:
            models.append(fit_original(warm.train, mode, threads, original_rounds, seed))
        else:  # a mid-range point of the original's search space, for quick runs
            models.append(fit_original(warm.train, mode, threads, chosen=(10, 50)))
        log.info("production %s", mode)
        models.append(fit_production(warm.train, mode, threads, params))
    rows = []
    for model in models:
        rows.append({"name": model.name, "kind": model.kind, "seconds": round(model.seconds, 3),
                     "cost": model.cost, "fits": model.fits, "info": model.info,
                     "warm": measure_warm(model, warm, ks)})
    if cold_fraction > 0:
        cold = cold_split(data, cold_fraction, seed)
        cold_matrix = cold.train_matrix()
        # Hyper-parameters found on the warm split are reused: one more fit per model.
        cold_models = fit_baselines(cold_matrix, seed, lam)
        for model in models:
            if model.name.startswith("original "):
                mode = model.name.split()[1]
                chosen = (model.info["epochs"], model.info["components"])
                cold_models.append(fit_original(cold.train, mode, threads, chosen=chosen))
            elif model.kind == "model":
                mode = model.name.split()[1]
                fitted = fit_production(cold.train, mode, threads, params)
                cold_models.append(replace(fitted, name=model.name))
        by_name = {m.name: m for m in cold_models}
        for row in rows:
            if row["name"] in by_name:
                row["cold"] = measure_cold(by_name[row["name"]], cold)
    baseline_rows = [r for r in rows if r["kind"] == "baseline"]
    best = max(baseline_rows, key=lambda r: r["warm"]["overall"]["at"][10]["precision"])
    best_p = best["warm"]["overall"]["at"][10]["precision"]
    for row in rows:
        row["ratio_to_best_baseline"] = (row["warm"]["overall"]["at"][10]["precision"] / best_p
                                         if best_p > 0 else float("nan"))
    inter = data.interactions
    return {"tenant": data.tenant, "protocol": protocol, "ks": list(ks), "seed": seed,
            "threads": threads, "modes": list(modes), "best_baseline": best["name"],
            "counts": {"users": len(data.users), "items": len(data.items),
                       "interactions": len(inter), "train": int(matrix.nnz),
                       "test": int(warm.test.nnz), "test_users": int(
                           (np.diff(warm.test.indptr) > 0).sum()),
                       "rating_1_share": float(inter.ratings.mean()) if len(inter) else 0.0},
            "params": dict((params or train.TrainParams()).__dict__), "models": rows}
