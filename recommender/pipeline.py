"""One tenant's run: get the export, validate, build features, fit, precompute, publish, persist.

A bad export, a failed fit or a failed write never touches what is published: the new version
only becomes visible at the pointer switch, which is the last step. The model files are written
before the switch, so a full or read-only ``ML_MODELS_DIR`` fails the run with nothing changed.

The stages read top to bottom in ``_run``; each is a function of the ``Run`` it belongs to, which
carries the settings, the caller's options, the Redis client and the result being filled in.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from published import summary, versions
from published.runs import LastRun, RunMeta, RunStatus, VersionStatus
from published.savedmodel import SavedModel
from recommender.fitreport import describe_fit
from recommender.ingest import download, export
from recommender.model import checkpoint as fitcheckpoint
from recommender.model import features, saving, train, warmstart
from recommender.outcome import Progress, Say, TenantResult, quiet
from recommender.promotion import gate
from recommender.publish import explore, modelfile, precompute
from recommender.publish.restore import publish_saved
from runtime.config import Settings
from runtime.errors import (
    DownloadError,
    ExportError,
    FitInterrupted,
    LockLostError,
    ModelStoreError,
    StaleVersionError,
    describe,
)
from runtime.timing import clocked, timed

log = logging.getLogger(__name__)

MIN_USERS = MIN_ITEMS = 10
# What each stage does, as the progress says it; their seconds are the table's last column.
STAGES = {"load": "read and check the export", "features": "the users' and items' features",
          "fit": "LightFM on a validation split, its layers, then all interactions",
          "save": "precompute every list and write the model files",
          "publish": "the lists into Redis, then the switch to the new version"}
TOO_SMALL = "The number of users or items is too small to train a model"


@dataclass(frozen=True)
class RunOptions:
    """What the caller asked of this run, beyond the settings."""

    algorithm: str
    force: bool = False  # train even when this export is published, fit afresh, skip the gate
    export_dir: Path | None = None  # read the export here instead of ML_EXPORT_DIR or Totara
    params: train.TrainParams = field(default_factory=train.TrainParams)
    # The caller holds the tenant's training lock (the worker does), so a partial version left
    # by an earlier run is removed at once rather than after it idled for minutes.
    exclusive: bool = False
    interrupt: threading.Event | None = None  # set: the fit stops, checkpointed (FitInterrupted)


@dataclass
class Run:
    settings: Settings
    client: redis.Redis
    options: RunOptions
    progress: Progress
    result: TenantResult

    @property
    def tenant(self) -> str:
        return self.result.tenant

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.progress.stage(self.tenant, f"{name}: {STAGES[name]}")
        try:
            with timed(self.result.stage_seconds, name):
                yield
        finally:
            self.result.stage_seconds[name] = round(self.result.stage_seconds[name], 3)

    def say(self, text: str, transient: bool) -> None:
        self.progress.phase(self.tenant, text, transient)

    def log_summary(self, message: str, *, with_fit: bool = False) -> None:
        """A row of train_summary.log, with the fit's figures once there is a fit."""
        figures = ((self.result.epochs, self.result.components,
                    self.result.metrics.get("auc", "")) if with_fit else ())
        try:
            summary.append(self.settings.logs_dir, self.options.algorithm, self.tenant, message,
                           *figures)
        except OSError as exc:  # the run's outcome matters more than this record of it
            log.warning("tenant %s: could not write train_summary.log in ML_LOGS_DIR: %s",
                        self.tenant, exc)


def train_tenant(settings: Settings, client: redis.Redis, tenant: str, *,
                 algorithm: str | None = None, force: bool = False,
                 export_dir: Path | None = None, progress: Progress | None = None,
                 params: train.TrainParams | None = None, exclusive: bool = False,
                 interrupt: threading.Event | None = None) -> TenantResult:
    """Run the whole pipeline for one tenant. Infrastructure errors raise; data errors return;
    the outcome, whatever it is, is recorded in ``keys.last_run`` for the health check."""
    options = RunOptions(algorithm or settings.algorithm, force, export_dir,
                         params or train.TrainParams(), exclusive, interrupt)
    run = Run(settings, client, options, progress or Progress(),
              TenantResult(tenant, RunStatus.FAILED, "", algorithm=options.algorithm))
    try:
        _run(run)
    except FitInterrupted:
        raise  # not an outcome: the event goes back to be resumed
    except Exception as exc:
        # A lost lock is retried: nothing was published, the next attempt locks again.
        run.result.status = (RunStatus.LOCK_LOST if isinstance(exc, LockLostError)
                             else RunStatus.FAILED)
        run.result.message = describe(exc)
        if not isinstance(exc, DownloadError):  # that one is logged where it happens
            run.log_summary(run.result.message)
        _record(client, run.result)
        raise
    _record(client, run.result)
    return run.result


def _run(run: Run) -> None:
    versions.collect_garbage(run.client, run.tenant, run.settings.publish_grace_seconds,
                             **({"orphan_idle_seconds": 0} if run.options.exclusive else {}))
    data = _load(run)
    if data is None:
        return
    published = versions.current_meta(run.client, run.tenant)
    if _already_published(run, data, published):
        return
    # Named before the fit: of two runs, the one that started later wins the pointer switch.
    version = versions.new_version()
    meta = RunMeta(VersionStatus.TRAINED, run.options.algorithm, len(data.users),
                   len(data.items), len(data.interactions), data.fingerprint,
                   run.settings.top_k)
    model = _train(run, data, meta)
    refusal = None if model is None or run.options.force else gate(published, run.result)
    if refusal:
        run.result.status, run.result.message = RunStatus.REJECTED, refusal
        run.log_summary(refusal, with_fit=True)
        log.warning("tenant %s: %s", run.tenant, refusal)
        return
    meta.trained_at = round(time.time(), 3)
    with run.stage("save"):
        computing = _save(run.settings, run.tenant, version, model, meta,
                          None if model is None else explore.from_export(data), run.say)
    published_now = _publish(run, version, model, meta)
    # The lists are computed while their file is written; that time counts as publishing, as
    # it did when they were computed on their way to Redis, so the stages keep their meaning.
    seconds = run.result.stage_seconds
    seconds["save"] = round(seconds["save"] - computing, 3)
    seconds["publish"] = round(seconds["publish"] + computing, 3)
    if published_now:
        _finish(run, version)


def _load(run: Run) -> export.TenantExport | None:
    """The tenant's export, or None when it is rejected (said in the log and the summary)."""
    source = run.options.export_dir or run.settings.export_dir
    with tempfile.TemporaryDirectory(prefix="ml-export-") as scratch:
        try:
            with run.stage("load"):
                if source is None:
                    download.fetch_tenant(run.settings, run.tenant, Path(scratch))
                return export.load_tenant(source or Path(scratch), run.tenant)
        except ExportError as exc:
            run.result.message = f"export rejected: {exc}"
            run.log_summary(run.result.message)
            log.error("tenant %s: %s", run.tenant, run.result.message)
            return None
        except DownloadError as exc:
            run.log_summary(f"download failed: {exc}")
            raise


def _already_published(run: Run, data: export.TenantExport,
                       published: dict[str, str] | None) -> bool:
    result = run.result
    result.counts = {"users": len(data.users), "items": len(data.items),
                     "interactions": len(data.interactions)}
    if (run.options.force or not published
            or published.get("export_fingerprint") != data.fingerprint
            or published.get("algorithm") != run.options.algorithm):
        return False
    result.status, result.version = RunStatus.SKIPPED, published.get("version")
    result.message = "this export is already published"
    return True


def _train(run: Run, data: export.TenantExport, meta: RunMeta) -> SavedModel | None:
    """The fitted model, or None when the tenant is too small to train (said in ``meta``)."""
    if len(data.users) < MIN_USERS or len(data.items) < MIN_ITEMS:
        meta.status, meta.message = VersionStatus.NOT_TRAINED, TOO_SMALL
        run.result.status, run.result.message = RunStatus.NOT_TRAINED, TOO_SMALL
        return None
    model = _fit(run, data, meta)
    run.result.status = RunStatus.PUBLISHED
    return model


def _fit(run: Run, data: export.TenantExport, meta: RunMeta) -> SavedModel:
    """Fit from the saved model when it fits this export (recommender.model.warmstart), else
    afresh; ``force`` always fits afresh."""
    settings, params = run.settings, run.options.params
    with run.stage("features"):
        fs = features.build(data, run.options.algorithm)

    with run.stage("fit"):
        warm, why = (None, "forced") if run.options.force else warmstart.prepare(
            _saved(settings, data.tenant), data, fs, run.options.algorithm,
            dict(params.__dict__), settings.incremental_runs)
        fitted = (train.fit_incremental(fs, params, warm, settings.num_threads, run.say)
                  if warm else why)
        if isinstance(fitted, str):
            log.info("tenant %s: full fit (%s)", data.tenant, fitted)
            fitted = train.fit(fs, params, settings.num_threads, run.say, fitcheckpoint.Checkpoint(
                modelfile.tenant_dir(settings.models_dir, data.tenant) / fitcheckpoint.NAME,
                data.fingerprint, run.options.algorithm, params,
                run.options.interrupt or threading.Event()))
            warm = None
    describe_fit(run.result, meta, fitted, warm, params)
    return saving.saved_model(data, fitted.model, fitted.features, fitted.item_item,
                              fitted.blend.weight, fitted.ranker)


def _saved(settings: Settings, tenant: str) -> warmstart.Saved | None:
    """The tenant's current saved model to start from; not read when warm starts are off."""
    version = modelfile.current_version(settings.models_dir, tenant)
    if version is None or settings.incremental_runs <= 0:
        return None
    try:
        return warmstart.Saved(version, *modelfile.load(settings.models_dir, tenant, version))
    except (OSError, ValueError) as exc:
        return warmstart.Saved(version, None, {}, error=str(exc))


def _save(settings: Settings, tenant: str, version: str, model: SavedModel | None,
          meta: RunMeta, source: explore.Source | None = None, say: Say = quiet) -> float:
    """Write the version's files; its lists are computed as their file is written, and
    published from it (recommender.publish.restore.publish_saved). Returns the seconds spent
    computing the lists."""
    spent: dict[str, float] = {"lists": 0.0}
    with timed(spent, "lists"):
        lists = None if model is None else precompute.lists(
            model, settings.top_k, settings.num_threads,
            batches=lambda b: clocked(b, spent, "lists"), say=say)
    try:
        modelfile.save(settings.models_dir, tenant, version, model, meta.to_dict(), lists,
                       source)
    except OSError as exc:
        raise ModelStoreError(f"cannot write the model to ML_MODELS_DIR="
                              f"{settings.models_dir}: {exc}") from exc
    return spent["lists"]


def _publish(run: Run, version: str, model: SavedModel | None, meta: RunMeta) -> bool:
    """Switch the tenant to ``version``; False when a newer version won (the run is stale)."""
    with run.stage("publish"):
        try:
            publish_saved(run.settings, run.client, run.tenant, version, version, model,
                          meta.to_dict())
        except StaleVersionError as exc:
            run.result.status, run.result.message = RunStatus.STALE, str(exc)
            return False
    return True


def _finish(run: Run, version: str) -> None:
    modelfile.mark_current(run.settings.models_dir, run.tenant, version)
    versions.collect_garbage(run.client, run.tenant, run.settings.publish_grace_seconds)
    result = run.result
    result.version = version
    if result.status == RunStatus.PUBLISHED:
        result.message = (f"trained: P@10 {result.metrics['precision_at_10']:.4f}, "
                          f"R@10 {result.metrics['recall_at_10']:.4f}, "
                          f"AUC {result.metrics['auc']:.4f}")
    run.log_summary(result.message, with_fit=True)


def _record(client: redis.Redis, result: TenantResult) -> None:
    run = LastRun(result.status, result.message, round(time.time(), 3), result.version,
                  result.algorithm, result.metrics.get("precision_at_10"))
    try:
        run.write(client, result.tenant)
    except redis.RedisError:  # the run's own outcome matters more than its record
        log.warning("tenant %s: could not record the run's outcome in Redis", result.tenant)
