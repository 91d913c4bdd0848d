"""The training side as the worker and the command line see it: train a tenant under its lock,
restore saved models, list tenants.

This is the one door into ``recommender`` for ``consumer``: the worker orchestrates (events,
acks, retries) and calls these methods; the command line calls the same ones, so taking the
tenant's lock, renewing it during a fit and releasing it is written once. The module is light:
the pipeline (numpy, LightFM, LightGBM) is imported when a training starts.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import redis

from published.locks import DEFAULT_TTL_SECONDS, LockRegistry, TenantLock
from published.runs import RunStatus
from recommender.outcome import Progress, TenantResult
from recommender.publish import modelfile
from runtime.config import Settings

# The pipeline's entry points, replaceable for tests: (settings, client, tenant, *, algorithm,
# force[, export_dir, progress]) -> TenantResult, (settings, client, tenants) -> results and
# (settings) -> tenant ids.
TrainFn = Callable[..., TenantResult]
RestoreFn = Callable[[Settings, redis.Redis, list[str] | None], list[TenantResult]]
TenantsFn = Callable[[Settings], list[str]]


def run_pipeline(settings: Settings, client: redis.Redis, tenant: str, *,
                 algorithm: str | None = None, force: bool = False,
                 **options: Any) -> TenantResult:
    from recommender.pipeline import train_tenant  # imported late: heavy (LightFM, numpy)

    # exclusive: TrainingService.train holds the tenant's lock while this runs.
    return train_tenant(settings, client, tenant, algorithm=algorithm, force=force,
                        exclusive=True, **options)


def restore_saved(settings: Settings, client: redis.Redis,
                  tenants: list[str] | None = None) -> list[TenantResult]:
    from recommender.publish.restore import restore  # imported late: numpy

    return restore(settings, client, tenants)


def export_tenants(settings: Settings, export_dir: Path | None = None) -> list[str]:
    """The tenants of the current export: its tenants.csv, or Totara's."""
    export_dir = export_dir or settings.export_dir
    if export_dir is not None:
        from recommender.ingest.export import read_tenants

        return read_tenants(export_dir)
    from recommender.ingest.download import fetch_tenants

    with tempfile.TemporaryDirectory(prefix="ml-tenants-") as tmp:
        return fetch_tenants(settings, Path(tmp))


class TrainingService:
    """One process's handle on the training side; ``owner`` names it in the tenant locks."""

    def __init__(self, settings: Settings, client: redis.Redis, *, owner: str | None = None,
                 lock_ttl: float = DEFAULT_TTL_SECONDS, locks: LockRegistry | None = None,
                 train_fn: TrainFn | None = None, restore_fn: RestoreFn | None = None,
                 tenants_fn: TenantsFn | None = None) -> None:
        self.settings = settings
        self.client = client
        self.owner = owner
        self.lock_ttl = lock_ttl
        self.locks = locks if locks is not None else LockRegistry()
        # Set by a stopping worker: the pipeline's fit stops at its next epoch boundary,
        # checkpointed, and raises FitInterrupted (a replaced train_fn does not see it).
        self.interrupt = threading.Event()
        self._train = train_fn or partial(run_pipeline, interrupt=self.interrupt)
        self._restore = restore_fn or restore_saved
        self._tenants = tenants_fn

    def tenants(self, export_dir: Path | None = None) -> list[str]:
        if self._tenants is not None and export_dir is None:
            return [str(t) for t in self._tenants(self.settings)]
        return export_tenants(self.settings, export_dir)

    def train(self, tenant: str, *, algorithm: str | None = None, force: bool = False,
              export_dir: Path | None = None, progress: Progress | None = None,
              still_wanted: Callable[[], bool] | None = None,
              finished: Callable[[TenantResult], None] | None = None) -> TenantResult | None:
        """Train ``tenant`` under its lock, renewed while the fit runs.

        Returns the run's result; a ``locked`` result naming the holder when another process
        trains the tenant; None when ``still_wanted``, asked once the lock is held, says no.
        ``finished`` sees the result before the lock is released, so nothing can start between.
        """
        options = {k: v for k, v in (("export_dir", export_dir), ("progress", progress))
                   if v is not None}

        def work() -> TenantResult:
            result = self._train(self.settings, self.client, tenant, algorithm=algorithm,
                                 force=force, **options)
            if finished is not None:
                finished(result)
            return result

        return self._under_lock(tenant, work, still_wanted,
                                algorithm or self.settings.algorithm)

    def restore(self, tenants: list[str] | None = None) -> list[TenantResult]:
        """Republish the saved current models of ``tenants`` (default: every saved tenant),
        each under its lock: a tenant being trained is reported ``locked``, left to it."""
        results: list[TenantResult] = []
        for tenant in tenants or self.saved_tenants():
            outcome = self.restore_tenant(tenant)
            results.extend(outcome if isinstance(outcome, list) else [outcome] if outcome else [])
        return results

    def restore_tenant(self, tenant: str,
                       still_wanted: Callable[[], bool] | None = None
                       ) -> list[TenantResult] | TenantResult | None:
        """Republish one tenant's saved model under its lock (a training is never rolled back
        by a restore running beside it); a ``locked`` result or None as ``train``."""
        return self._under_lock(tenant, lambda: self._restore(self.settings, self.client,
                                                              [tenant]), still_wanted, "")

    def _under_lock(self, tenant: str, work: Callable[[], Any],
                    still_wanted: Callable[[], bool] | None, algorithm: str) -> Any:
        lock = TenantLock(self.client, tenant, ttl=self.lock_ttl, owner=self.owner)
        if not lock.acquire():
            holder = lock.holder()
            message = (f"being trained by {holder or 'another process'}; try again when it "
                       "has finished")
            return TenantResult(tenant, RunStatus.LOCKED, message, algorithm=algorithm,
                                holder=holder)
        self.locks.add(lock)
        try:
            with lock.renewing():
                if still_wanted is not None and not still_wanted():
                    return None
                return work()
        finally:
            self.locks.discard(lock)

    def saved_tenants(self) -> list[str]:
        return modelfile.saved_tenants(self.settings.models_dir)

    def saved_version(self, tenant: str) -> str | None:
        return modelfile.current_version(self.settings.models_dir, tenant)
