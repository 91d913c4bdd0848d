"""Saved models under ``ML_MODELS_DIR``: ``.npz`` arrays plus a JSON sidecar, never pickle.

Layout: ``<models dir>/tenant_<t>/<version>.npz`` (published.savedmodel), ``<version>.lists.npz``
(the lists published from it, recommender.publish.listsfile; absent in versions saved before
they were kept) and ``<version>.json``, and ``current``, a one-line file naming the version that
was last published. ``current`` is only written after the version is live in Redis, so
``restore`` republishes exactly what was being served.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from published.savedmodel import SavedModel
from recommender.publish import explore, listsfile
from runtime.files import atomic_write

KEEP_VERSIONS = 3


def tenant_dir(models_dir: Path, tenant: str) -> Path:
    return models_dir / f"tenant_{tenant}"


def lists_path(models_dir: Path, tenant: str, version: str) -> Path:
    return tenant_dir(models_dir, tenant) / f"{version}.lists.npz"


def explore_path(models_dir: Path, tenant: str, version: str) -> Path:
    """The export's part of what the explorer shows (recommender.publish.explore)."""
    return tenant_dir(models_dir, tenant) / f"{version}.explore.npz"


def save(models_dir: Path, tenant: str, version: str, model: SavedModel | None,
         meta: dict[str, Any], lists: listsfile.Lists | None = None,
         source: explore.Source | None = None) -> Path:
    """Write the version's files (not yet ``current``): the model (None: not trained), its JSON,
    then its ``lists`` as they are computed; raises OSError on a full/read-only disk.

    The lists come last because computing them is the long step: a process killed during it
    leaves a version with its JSON, which pruning removes, and restore computes lists that are
    missing.
    """
    folder = tenant_dir(models_dir, tenant)
    npz = folder / f"{version}.npz"
    written: list[Path] = []

    def put(path: Path, write: Any) -> None:
        atomic_write(path, write)
        written.append(path)

    try:
        put(npz, lambda h: np.savez(h, **({} if model is None else model.to_arrays())))
        put(folder / f"{version}.json",
            lambda h: h.write(json.dumps(meta, indent=1, sort_keys=True).encode()))
        if source is not None:
            put(explore_path(models_dir, tenant, version), lambda h: explore.save(h, source))
        if lists is not None:
            put(lists_path(models_dir, tenant, version), lambda h: listsfile.write(h, lists))
    except BaseException:
        # Without its JSON the arrays are never loaded nor pruned: they would only fill the disk.
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return npz


def mark_current(models_dir: Path, tenant: str, version: str) -> None:
    folder = tenant_dir(models_dir, tenant)
    atomic_write(folder / "current", lambda h: h.write(version.encode() + b"\n"))
    versions = sorted(p.stem for p in folder.glob("*.json"))
    for old in versions[:-KEEP_VERSIONS]:
        if old != version:
            (folder / f"{old}.npz").unlink(missing_ok=True)
            lists_path(models_dir, tenant, old).unlink(missing_ok=True)
            explore_path(models_dir, tenant, old).unlink(missing_ok=True)
            (folder / f"{old}.json").unlink(missing_ok=True)
    # Temporary files of writers killed half-way: the caller holds the tenant's lock and has
    # finished writing, so none of them is being written now.
    for leftover in folder.glob(".*"):
        leftover.unlink(missing_ok=True)


def current_version(models_dir: Path, tenant: str) -> str | None:
    marker = tenant_dir(models_dir, tenant) / "current"
    if not marker.exists():
        return None
    return marker.read_text().strip() or None


def load(models_dir: Path, tenant: str,
         version: str) -> tuple[SavedModel | None, dict[str, Any]]:
    """The saved model (None: saved as not trained) and its meta; raises OSError, or ValueError
    for a file that is not a whole saved model."""
    folder = tenant_dir(models_dir, tenant)
    meta = json.loads((folder / f"{version}.json").read_text())
    npz = folder / f"{version}.npz"
    if not npz.exists():
        return None, meta
    with np.load(npz, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    if not arrays:
        return None, meta
    try:
        return SavedModel.from_arrays(arrays), meta
    except KeyError as exc:
        raise ValueError(f"{npz} has no array {exc}") from None


def saved_tenants(models_dir: Path) -> list[str]:
    if not models_dir.is_dir():
        return []
    return sorted(p.name[len("tenant_"):] for p in models_dir.glob("tenant_*")
                  if (p / "current").exists())
