"""Saved models under ``ML_MODELS_DIR``: ``.npz`` arrays plus a JSON sidecar, never pickle.

Layout: ``<models dir>/tenant_<t>/<version>.npz`` and ``<version>.json``, and ``current``, a
one-line file naming the version that was last published. ``current`` is only written after the
version is live in Redis, so ``restore`` republishes exactly what was being served.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

KEEP_VERSIONS = 3


def tenant_dir(models_dir: Path, tenant: str) -> Path:
    return models_dir / f"tenant_{tenant}"


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(models_dir: Path, tenant: str, version: str, arrays: dict[str, np.ndarray],
         meta: dict[str, Any]) -> Path:
    """Write the version's files (not yet ``current``); raises OSError on a full/read-only disk."""
    folder = tenant_dir(models_dir, tenant)
    npz = folder / f"{version}.npz"
    _atomic_write(npz, lambda h: np.savez(h, **arrays))
    try:
        _atomic_write(folder / f"{version}.json",
                      lambda h: h.write(json.dumps(meta, indent=1, sort_keys=True).encode()))
    except BaseException:
        # Without its JSON the arrays are never loaded nor pruned: they would only fill the disk.
        npz.unlink(missing_ok=True)
        raise
    return npz


def mark_current(models_dir: Path, tenant: str, version: str) -> None:
    folder = tenant_dir(models_dir, tenant)
    _atomic_write(folder / "current", lambda h: h.write(version.encode() + b"\n"))
    versions = sorted(p.stem for p in folder.glob("*.json"))
    for old in versions[:-KEEP_VERSIONS]:
        if old != version:
            (folder / f"{old}.npz").unlink(missing_ok=True)
            (folder / f"{old}.json").unlink(missing_ok=True)


def current_version(models_dir: Path, tenant: str) -> str | None:
    marker = tenant_dir(models_dir, tenant) / "current"
    if not marker.exists():
        return None
    return marker.read_text().strip() or None


def load(models_dir: Path, tenant: str,
         version: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    folder = tenant_dir(models_dir, tenant)
    meta = json.loads((folder / f"{version}.json").read_text())
    arrays: dict[str, np.ndarray] = {}
    npz = folder / f"{version}.npz"
    if npz.exists():
        with np.load(npz, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    return arrays, meta


def saved_tenants(models_dir: Path) -> list[str]:
    if not models_dir.is_dir():
        return []
    return sorted(p.name[len("tenant_"):] for p in models_dir.glob("tenant_*")
                  if (p / "current").exists())
