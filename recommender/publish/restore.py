"""Republish the saved current models (e.g. into an emptied Redis) without retraining.

A version saved with its lists (recommender.publish.listsfile) is copied into Redis as it was
published: no LightFM, LightGBM or scikit-learn is imported, so a small tenant takes a fraction
of a second. Only a model saved before the lists were kept beside it, or for another
``ML_TOP_K``, has its lists computed again, with the list code imported then.

A saved model is published under its own version id, never a fresh one: it is skipped when the
live version is as new or newer, and the pointer switch refuses it when a newer one goes live
meanwhile, so a restore on a live Redis never rolls a tenant back or turns a training that
finishes beside it stale. Callers take the tenant's lock (recommender.service.TrainingService).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import redis

from published import versions
from published.runs import RunStatus
from published.savedmodel import SavedModel
from recommender.outcome import TenantResult
from recommender.publish import explore, listsfile, modelfile, release
from runtime.config import Settings

log = logging.getLogger(__name__)


def restore(settings: Settings, client: redis.Redis,
            tenants: list[str] | None = None) -> list[TenantResult]:
    """Republish each tenant's current saved model, unless a version as new is live."""
    return [_restore(settings, client, tenant)
            for tenant in tenants or modelfile.saved_tenants(settings.models_dir)]


def _restore(settings: Settings, client: redis.Redis, tenant: str) -> TenantResult:
    version = modelfile.current_version(settings.models_dir, tenant)
    result = TenantResult(tenant, RunStatus.FAILED, "", version=version)
    if version is None:
        result.message = "no saved model"
        return result
    live = versions.current_version(client, tenant)
    if live is not None and live >= version:
        result.status, result.version = RunStatus.SKIPPED, live
        result.message = f"version {live} is live, as new as the saved {version} or newer"
        return result
    model, meta = modelfile.load(settings.models_dir, tenant, version)
    result.algorithm = meta.get("algorithm", "")
    try:
        publish_saved(settings, client, tenant, version, version, model, meta)
    except versions.StaleVersionError as exc:
        result.status, result.message = RunStatus.STALE, str(exc)
    else:
        result.status, result.message = RunStatus.PUBLISHED, f"restored from {version}"
    return result


def publish_saved(settings: Settings, client: redis.Redis, tenant: str, saved: str,
                  version: str, model: SavedModel | None, meta: dict[str, Any]) -> None:
    """Publish the ``saved`` version's model and lists as ``version`` (release.publish)."""
    source = explore.load(modelfile.explore_path(settings.models_dir, tenant, saved))
    with _lists(settings, tenant, saved, model) as lists:
        release.publish(client, tenant, version, model, lists, meta, source)


@contextmanager
def _lists(settings: Settings, tenant: str, saved: str,
           model: SavedModel | None) -> Iterator[listsfile.Lists | None]:
    if model is None:
        yield None
        return
    path = modelfile.lists_path(settings.models_dir, tenant, saved)
    with ExitStack() as opened:
        try:
            stored = opened.enter_context(listsfile.read(path)) if path.exists() else None
        except (OSError, ValueError) as exc:  # derived data: computing it again will do
            log.warning("tenant %s: the lists of %s cannot be read (%s)", tenant, saved, exc)
            stored = None
        if stored is not None and stored.top_k == settings.top_k:
            yield stored
            return
    log.info("tenant %s: computing the lists of %s", tenant, saved)
    from recommender.publish import precompute  # the list code: LightGBM for a re-ranker

    yield precompute.lists(model, settings.top_k, settings.num_threads)
