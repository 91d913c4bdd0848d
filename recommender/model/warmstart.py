"""Incremental retraining: carry the saved model's parameters over to a new export.

A new export usually differs from the last one by a few days of interactions and a few users or
items. Rather than fitting from scratch, ``train.fit_incremental`` starts from the saved model:
every feature (user, item, tag, term) the two share by name keeps its learnt embedding, bias and
optimiser state; new features start as LightFM would start them. Ids are matched by name, never
by row, so users and items may be added, removed or reordered between exports.

Validation must not leak: the saved model has seen every pair of the previous export, so a
random split of the new export would measure it on pairs it was trained on. Only pairs that are
new since the saved model are held out; the warm model before its first epoch then scores them
exactly as the published model would, which gives early stopping an honest starting point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from published.savedmodel import SIDES, SavedModel
from recommender.ingest.export import TenantExport
from recommender.model.features import FeatureSet

MAX_NEW_SHARE = 0.5  # more new pairs than this: the old model is no head start, fit afresh
MIN_HELD_OUT = 100  # fewer held-out new pairs than this cannot tell epochs apart
# Settings a warm start must share with the saved model: a different shape or optimiser
# would make the carried parameters meaningless.
SAME_PARAMS = ("components", "loss", "learning_schedule", "learning_rate")


@dataclass
class Saved:
    """The tenant's current saved model as the caller found it in ML_MODELS_DIR."""

    version: str
    model: SavedModel | None  # None: saved as not trained
    meta: dict[str, Any]
    error: str = ""  # why its files could not be read; then model and meta are empty


@dataclass
class WarmStart:
    """The saved model laid out on the new export's feature rows."""

    source_version: str
    runs: int  # incremental runs since the last full fit, this one excluded
    identity_weight: float | None
    params: dict[str, dict[str, np.ndarray]]  # side -> parameter -> rows of the saved model
    rows: dict[str, np.ndarray]  # side -> saved row per new feature row, -1 for a new feature
    old_pairs: sp.csr_matrix  # (user, item) pairs the saved model was trained on, new indices
    full_fit_precision: float | None  # validation P@10 of the last full fit, for the gate


def _name_rows(old_names: np.ndarray, new_names: list[str]) -> np.ndarray:
    index = {name: row for row, name in enumerate(old_names.tolist())}
    return np.fromiter((index.get(name, -1) for name in new_names), np.int64, len(new_names))


def _old_pairs(saved: SavedModel, data: TenantExport) -> sp.csr_matrix:
    """The saved model's positives, re-indexed by user id and item key into the new export."""
    n_users, n_items = len(data.users), len(data.items)
    user_row = {uid: row for row, uid in enumerate(data.users.ids.tolist())}
    item_row = {key: row for row, key in enumerate(data.items.keys)}
    users = np.fromiter((user_row.get(u, -1) for u in saved.user_ids.tolist()), np.int64)
    items = np.fromiter((item_row.get(k, -1) for k in saved.item_keys.tolist()), np.int64)
    indptr = saved.positives_indptr
    rows = users[np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))]
    cols = items[saved.positives_indices]
    kept = (rows >= 0) & (cols >= 0)
    return sp.csr_matrix((np.ones(int(kept.sum()), np.float32), (rows[kept], cols[kept])),
                         shape=(n_users, n_items))


def prepare(saved: Saved | None, data: TenantExport, fs: FeatureSet, algorithm: str,
            params: dict[str, Any], max_runs: int) -> tuple[WarmStart | None, str]:
    """The warm start for this export from the tenant's current ``saved`` model (None when it
    has none), or None and why the fit must start from scratch."""
    if max_runs <= 0:
        return None, "incremental training is off (ML_INCREMENTAL_RUNS=0)"
    if saved is None:
        return None, "no saved model"
    version, meta = saved.version, saved.meta
    if saved.error:
        return None, f"the saved model {version} cannot be read ({saved.error})"
    if meta.get("algorithm") != algorithm:
        return None, f"the saved model was trained as {meta.get('algorithm')!r}"
    saved_params = meta.get("params") or {}
    changed = [name for name in SAME_PARAMS if saved_params.get(name) != params.get(name)]
    if changed:
        return None, f"training settings changed since the saved model: {', '.join(changed)}"
    runs = int(meta.get("incremental_runs", 0))
    if runs >= max_runs:
        return None, f"{runs} incremental runs since the last full fit (ML_INCREMENTAL_RUNS)"
    model = saved.model
    if model is None or not all(model.features(side).has_optimiser_state for side in SIDES):
        return None, "the saved model has no optimiser state (saved before incremental training)"
    old_pairs = _old_pairs(model, data)
    full = fs.interactions.tocsr()
    kept = full.multiply(old_pairs).nnz
    if full.nnz == 0 or kept < (1.0 - MAX_NEW_SHARE) * full.nnz:
        return None, f"only {kept} of {full.nnz} interactions were known to the saved model"
    user_names = fs.user_feature_names or [f"user:{u}" for u in data.users.ids.tolist()]
    item_names = fs.item_feature_names or list(data.items.keys)
    weight = meta.get("identity_weight")
    full_fit = meta.get("full_fit_precision_at_10", meta.get("precision_at_10"))
    return WarmStart(
        source_version=version, runs=runs,
        identity_weight=None if weight is None else float(weight),
        params={side: model.features(side).by_parameter() for side in SIDES},
        rows={"user": _name_rows(model.user_features.names, user_names),
              "item": _name_rows(model.item_features.names, item_names)},
        old_pairs=old_pairs,
        full_fit_precision=None if full_fit is None else float(full_fit),
    ), f"warm start from {version}"


def split_new_pairs(full: sp.csr_matrix, old_pairs: sp.csr_matrix, fraction: float,
                    seed: int) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """(training part, held-out part): a random ``fraction`` of the pairs the saved model has
    not seen is held out; every user keeps at least one training pair."""
    pattern = full.copy()
    pattern.data[:] = 1.0
    new = (pattern - pattern.multiply(old_pairs)).tocsr()
    new.eliminate_zeros()
    new = new.tocoo()
    held = np.random.default_rng(seed).random(new.nnz) < fraction
    per_user = np.bincount(new.row[held], minlength=full.shape[0])
    # A user whose every pair is held out would only measure cold start: keep them whole.
    emptied = per_user >= np.diff(pattern.indptr)
    held &= ~emptied[new.row]
    held_out = sp.csr_matrix((np.ones(int(held.sum()), np.float32),
                              (new.row[held], new.col[held])), shape=full.shape)
    train_part = (pattern - held_out).tocsr()
    train_part.eliminate_zeros()
    return train_part, held_out
