"""Offline evaluation: production training against baselines on the same held-out interactions.

One run splits a tenant's interactions (recommender.offline.splits), fits every model compared
(recommender.offline.contenders) on the training part and measures them on the held-out part,
overall and per item type. A second split holds out whole users and whole items to measure cold
start. Reports are rendered by recommender.offline.evalreport.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from recommender.ingest.export import TenantExport
from recommender.model import train
from recommender.model.ranking import ranking_report
from recommender.offline.contenders import (
    ORIGINAL_ROUNDS,
    Fitted,
    fit_baselines,
    fit_original,
    fit_production,
    fit_production_and_part,
)
from recommender.offline.splits import Split, cold_split, split
from runtime.items import ITEM_TYPES

log = logging.getLogger(__name__)


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


def _fit_models(part: Split, modes: tuple[str, ...], threads: int, seed: int,
                original_rounds: int, params: train.TrainParams | None) -> list[Fitted]:
    """The baselines, then per mode the original service and production."""
    models = fit_baselines(part.train_matrix(), seed)
    for mode in modes:
        log.info("original %s: %d rounds of search", mode, original_rounds)
        if original_rounds > 0:
            models.append(fit_original(part.train, mode, threads, original_rounds, seed))
        else:  # a mid-range point of the original's search space, for quick runs
            models.append(fit_original(part.train, mode, threads, chosen=(10, 50)))
        log.info("production %s", mode)
        models.extend(fit_production_and_part(part.train, mode, threads, params))
    return models


def _refit_cold(models: list[Fitted], cold: Split, threads: int, seed: int,
                params: train.TrainParams | None) -> dict[str, Fitted]:
    """The same models on the cold split, by name. Hyper-parameters found on the warm split are
    reused: one more fit per model."""
    lam = next((m.info["lambda"] for m in models if m.name == "EASE^R"), None)
    cold_models = fit_baselines(cold.train_matrix(), seed, lam)
    for model in models:
        if model.name.startswith("original "):
            mode = model.name.split()[1]
            chosen = (model.info["epochs"], model.info["components"])
            cold_models.append(fit_original(cold.train, mode, threads, chosen=chosen))
        elif model.kind == "model":
            mode = model.name.split()[1]
            fitted = fit_production(cold.train, mode, threads, params)
            cold_models.append(replace(fitted, name=model.name))
    return {m.name: m for m in cold_models}


def _precision_at_10(row: dict) -> float:
    return row["warm"]["overall"]["at"][10]["precision"]


def _counts(data: TenantExport, warm: Split) -> dict:
    inter = data.interactions
    return {"users": len(data.users), "items": len(data.items), "interactions": len(inter),
            "train": int(warm.train_matrix().nnz), "test": int(warm.test.nnz),
            "test_users": int((np.diff(warm.test.indptr) > 0).sum()),
            "rating_1_share": float(inter.ratings.mean()) if len(inter) else 0.0}


def run(data: TenantExport, *, protocol: str = "random", ks: tuple[int, ...] = (5, 10, 25),
        modes: tuple[str, ...] = ("hybrid",), threads: int = 2, seed: int = 0,
        original_rounds: int = ORIGINAL_ROUNDS, cold_fraction: float = 0.1,
        params: train.TrainParams | None = None) -> dict:
    """Evaluate every model on one tenant; the result is what evalreport renders."""
    ks = tuple(sorted(set(ks) | {10}))
    warm = split(data, protocol, 0.2, seed)
    models = _fit_models(warm, modes, threads, seed, original_rounds, params)
    rows = [{"name": model.name, "kind": model.kind, "seconds": round(model.seconds, 3),
             "cost": model.cost, "fits": model.fits, "info": model.info,
             "warm": measure_warm(model, warm, ks)} for model in models]
    if cold_fraction > 0:
        cold = cold_split(data, cold_fraction, seed)
        by_name = _refit_cold(models, cold, threads, seed, params)
        for row in rows:
            if row["name"] in by_name:
                row["cold"] = measure_cold(by_name[row["name"]], cold)
    best = max((r for r in rows if r["kind"] == "baseline"), key=_precision_at_10)
    best_p = _precision_at_10(best)
    for row in rows:
        row["ratio_to_best_baseline"] = (_precision_at_10(row) / best_p if best_p > 0
                                         else float("nan"))
    return {"tenant": data.tenant, "protocol": protocol, "ks": list(ks), "seed": seed,
            "threads": threads, "modes": list(modes), "best_baseline": best["name"],
            "counts": _counts(data, warm),
            "params": dict((params or train.TrainParams()).__dict__), "models": rows}
