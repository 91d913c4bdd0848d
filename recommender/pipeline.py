"""One tenant's run: get the export, validate, build features, fit, precompute, publish, persist.

A bad export, a failed fit or a failed write never touches what is published: the new version
only becomes visible at the pointer switch, which is the last step. The model files are written
before the switch, so a full or read-only ``ML_MODELS_DIR`` fails the run with nothing changed.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from published import keys, summary, versions
from published.savedmodel import SavedModel
from recommender.ingest import download, export
from recommender.model import features, saving, train, warmstart
from recommender.publish import modelfile, precompute
from recommender.publish.restore import publish_saved
from recommender.results import Progress, TenantResult
from runtime.config import Settings

log = logging.getLogger(__name__)

MIN_USERS = MIN_ITEMS = 10
TOO_SMALL = "The number of users or items is too small to train a model"
# Promotion gate: a new model must reach this share of the published model's validation P@10.
PROMOTION_RATIO = 0.9


class ModelStoreError(OSError):
    """ML_MODELS_DIR cannot take the model (full, read-only, missing permissions)."""


@contextmanager
def _timed(result: TenantResult, name: str, progress: Progress) -> Iterator[None]:
    progress.stage(result.tenant, name)
    started = time.perf_counter()
    try:
        yield
    finally:
        result.stage_seconds[name] = round(time.perf_counter() - started, 3)


def _load(settings: Settings, tenant: str, export_dir: Path | None,
          scratch: Path) -> export.TenantExport:
    source = export_dir or settings.export_dir
    if source is None:
        download.fetch_tenant(settings, tenant, scratch)
        source = scratch
    return export.load_tenant(source, tenant)


def train_tenant(settings: Settings, client: redis.Redis, tenant: str, *,
                 algorithm: str | None = None, force: bool = False,
                 export_dir: Path | None = None, progress: Progress | None = None,
                 params: train.TrainParams | None = None,
                 exclusive: bool = False) -> TenantResult:
    """Run the whole pipeline for one tenant. Infrastructure errors raise; data errors return.

    ``exclusive``: the caller holds the tenant's training lock (the worker does), so a partial
    version left by an earlier run is removed at once rather than after it idled for minutes.
    The outcome, whatever it is, is recorded in ``keys.last_run`` for the health check.
    """
    result = TenantResult(tenant, "failed", "", algorithm=algorithm or settings.algorithm)
    try:
        _run(settings, client, result, force, export_dir, progress or Progress(),
             params or train.TrainParams(), exclusive)
    except Exception as exc:
        result.status, result.message = "failed", f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, download.DownloadError):  # that one is logged where it happens
            summary.append(settings.logs_dir, result.algorithm, tenant, result.message)
        _record(client, result)
        raise
    _record(client, result)
    return result


def _record(client: redis.Redis, result: TenantResult) -> None:
    fields = {"status": result.status, "message": result.message, "at": round(time.time(), 3),
              "version": result.version or "", "algorithm": result.algorithm,
              "precision_at_10": result.metrics.get("precision_at_10", "")}
    try:
        client.hset(keys.last_run(result.tenant), mapping=fields)
    except redis.RedisError:  # the run's own outcome matters more than its record
        log.warning("tenant %s: could not record the run's outcome in Redis", result.tenant)


def _gate(published: dict[str, str] | None, result: TenantResult) -> str | None:
    """Why the new model must not replace the published one, or None.

    A full fit is compared with the published model's last full fit (an incremental run's
    figure is measured on other pairs); an incremental run with the saved model's score on its
    own held-out pairs, which is the same measurement of the model it replaces.
    """
    baseline = result.metrics.get("warm_baseline_precision_at_10")
    if baseline is None:
        published = published or {}
        baseline = published.get("full_fit_precision_at_10", published.get("precision_at_10"))
    if baseline is None:
        return None
    try:
        old = float(baseline)
    except ValueError:
        return None
    new = result.metrics["precision_at_10"]
    if new < PROMOTION_RATIO * old:
        return (f"not published: validation P@10 {new:.4f} is below {PROMOTION_RATIO:.0%} of "
                f"the published model's {old:.4f} (train with force to publish anyway)")
    return None


def _run(settings: Settings, client: redis.Redis, result: TenantResult, force: bool,
         export_dir: Path | None, progress: Progress, params: train.TrainParams,
         exclusive: bool = False) -> None:
    tenant, algorithm = result.tenant, result.algorithm
    versions.collect_garbage(client, tenant, settings.publish_grace_seconds,
                          **({"orphan_idle_seconds": 0} if exclusive else {}))
    with tempfile.TemporaryDirectory(prefix="ml-export-") as scratch:
        try:
            with _timed(result, "load", progress):
                data = _load(settings, tenant, export_dir, Path(scratch))
        except export.ExportError as exc:
            result.message = f"export rejected: {exc}"
            summary.append(settings.logs_dir, algorithm, tenant, result.message)
            log.error("tenant %s: %s", tenant, result.message)
            return
        except download.DownloadError as exc:
            summary.append(settings.logs_dir, algorithm, tenant, f"download failed: {exc}")
            raise
    result.counts = {"users": len(data.users), "items": len(data.items),
                     "interactions": len(data.interactions)}
    published = versions.current_meta(client, tenant)
    if (not force and published and published.get("export_fingerprint") == data.fingerprint
            and published.get("algorithm") == algorithm):
        result.status, result.version = "skipped", published.get("version")
        result.message = "this export is already published"
        return
    version = versions.new_version()
    meta = {"status": "trained", "algorithm": algorithm, "n_users": len(data.users),
            "n_items": len(data.items), "n_interactions": len(data.interactions),
            "export_fingerprint": data.fingerprint, "top_k": settings.top_k}
    if len(data.users) < MIN_USERS or len(data.items) < MIN_ITEMS:
        meta.update(status="not_trained", message=TOO_SMALL)
        model: SavedModel | None = None
        result.status, result.message = "not_trained", TOO_SMALL
    else:
        model = _fit(data, algorithm, settings, params, result, progress, meta, force)
        result.status = "published"
        refusal = None if force else _gate(published, result)
        if refusal:
            result.status, result.message = "rejected", refusal
            summary.append(settings.logs_dir, algorithm, tenant, refusal, result.epochs,
                           result.components, result.metrics["auc"])
            log.warning("tenant %s: %s", tenant, refusal)
            return
    meta["trained_at"] = round(time.time(), 3)
    with _timed(result, "save", progress):
        _save(settings, tenant, version, model, meta)
    with _timed(result, "publish", progress):
        try:
            publish_saved(settings, client, tenant, version, version, model, meta)
        except versions.StaleVersionError as exc:
            result.status, result.message = "stale", str(exc)
            return
    modelfile.mark_current(settings.models_dir, tenant, version)
    versions.collect_garbage(client, tenant, settings.publish_grace_seconds)
    result.version = version
    if result.status == "published":
        result.message = (f"trained: P@10 {result.metrics['precision_at_10']:.4f}, "
                          f"R@10 {result.metrics['recall_at_10']:.4f}, "
                          f"AUC {result.metrics['auc']:.4f}")
    summary.append(settings.logs_dir, algorithm, tenant, result.message, result.epochs,
                   result.components, result.metrics.get("auc", ""))


def _save(settings: Settings, tenant: str, version: str, model: SavedModel | None,
          meta: dict) -> None:
    """Write the version's files; its lists are computed as their file is written, and
    published from it (recommender.publish.restore.publish_saved)."""
    lists = None if model is None else precompute.lists(model, settings.top_k,
                                                        settings.num_threads)
    try:
        modelfile.save(settings.models_dir, tenant, version, model, meta, lists)
    except OSError as exc:
        raise ModelStoreError(f"cannot write the model to ML_MODELS_DIR="
                              f"{settings.models_dir}: {exc}") from exc


def _fit(data: export.TenantExport, algorithm: str, settings: Settings,
         params: train.TrainParams, result: TenantResult, progress: Progress,
         meta: dict, force: bool) -> SavedModel:
    """Fit from the saved model when it fits this export (recommender.model.warmstart), else afresh;
    ``force`` always fits afresh."""
    with _timed(result, "features", progress):
        fs = features.build(data, algorithm)

    def on_epoch(epoch: int, precision: float) -> None:
        progress.epoch(data.tenant, epoch, precision)

    with _timed(result, "fit", progress):
        warm, why = (None, "forced") if force else warmstart.prepare(
            _saved(settings, data.tenant), data, fs, algorithm, dict(params.__dict__),
            settings.incremental_runs)
        fitted = (train.fit_incremental(fs, params, warm, settings.num_threads, on_epoch)
                  if warm else why)
        if isinstance(fitted, str):
            log.info("tenant %s: full fit (%s)", data.tenant, fitted)
            fitted = train.fit(fs, params, settings.num_threads, on_epoch=on_epoch)
            warm = None
    result.epochs, result.components = fitted.epochs, params.components
    result.metrics = {"precision_at_10": fitted.validation["precision"],
                      "recall_at_10": fitted.validation["recall"],
                      "ndcg_at_10": fitted.validation["ndcg"],
                      "auc": fitted.validation["auc"]}
    meta.update(epochs=fitted.epochs, components=params.components,
                epochs_trained=fitted.epochs_trained,
                **{k: round(v, 6) for k, v in result.metrics.items()})
    if warm is not None:  # fit_incremental succeeded: it always measures the baseline
        log.info("tenant %s: incremental fit from %s, validation P@10 %.4f on %d new pairs "
                 "(saved model: %.4f)", data.tenant, warm.source_version,
                 result.metrics["precision_at_10"], fitted.held_out_pairs, fitted.warm_baseline)
        result.metrics["warm_baseline_precision_at_10"] = fitted.warm_baseline
        meta.update(fit="incremental", incremental_from=warm.source_version,
                    incremental_runs=warm.runs + 1, validation_pairs="new",
                    warm_baseline_precision_at_10=round(fitted.warm_baseline, 6))
        if warm.full_fit_precision is not None:
            meta["full_fit_precision_at_10"] = warm.full_fit_precision
    else:
        meta.update(fit="full", incremental_runs=0, validation_pairs="random",
                    full_fit_precision_at_10=meta["precision_at_10"])
    if fitted.identity_weight is not None:  # the share chosen on validation, for diagnosis
        meta["identity_weight"] = fitted.identity_weight
    if fitted.item_item is not None:
        meta.update(blend_weight=fitted.blend.weight, item_item_lambda=fitted.blend.lam,
                    reranked=int(fitted.ranker is not None))
        for name, precision in fitted.layers.rerank.precision.items():
            meta[f"rerank_validation_{name}"] = round(precision, 6)
    meta["params"] = dict(params.__dict__)
    return saving.saved_model(data, fitted.model, fs, fitted.item_item, fitted.blend.weight,
                              fitted.ranker)


def _saved(settings: Settings, tenant: str) -> warmstart.Saved | None:
    """The tenant's current saved model to start from; not read when warm starts are off."""
    version = modelfile.current_version(settings.models_dir, tenant)
    if version is None or settings.incremental_runs <= 0:
        return None
    try:
        return warmstart.Saved(version, *modelfile.load(settings.models_dir, tenant, version))
    except (OSError, ValueError) as exc:
        return warmstart.Saved(version, None, {}, error=str(exc))
