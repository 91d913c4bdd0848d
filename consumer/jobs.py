"""The slow work of an event, run on the training thread (never on the connection thread).

- ``train``: take the tenant's lock, call the pipeline, mark the event done, release the lock.
- fan-out of ``export-ready`` / ``retrain`` without a tenant list: read tenants.csv (a download
  that can wait minutes while Totara answers 202).

Jobs return an ``Outcome`` or raise; the worker decides on ack, retry or dead-letter.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import redis

from consumer.dedup import DoneMarkers
from consumer.events import Event
from published import runs
from published.locks import DEFAULT_TTL_SECONDS, LockRegistry, TenantLock
from runtime.config import Settings
from runtime.errors import RetryableError

log = logging.getLogger(__name__)

TrainFn = Callable[..., Any]  # recommender.pipeline.train_tenant's signature
TenantsFn = Callable[[Settings], list[str]]

# Statuses of a run after which the event is done for good (re-exported for the worker).
SUCCESS_STATUSES = runs.SUCCESS_STATUSES


def default_train_fn(settings: Settings, client: redis.Redis, tenant: str, *,
                     algorithm: str | None = None, force: bool = False) -> Any:
    from recommender.pipeline import train_tenant  # imported late: heavy (LightFM, numpy)

    # exclusive: run_train holds the tenant's lock while this runs.
    return train_tenant(settings, client, tenant, algorithm=algorithm, force=force,
                        exclusive=True)


def default_tenants_fn(settings: Settings) -> list[str]:
    """The tenants of the current export: ML_EXPORT_DIR's tenants.csv, or Totara's."""
    if settings.export_dir is not None:
        from recommender.ingest.export import read_tenants

        return read_tenants(settings.export_dir)
    from recommender.ingest.download import fetch_tenants

    with tempfile.TemporaryDirectory(prefix="ml-tenants-") as tmp:
        return fetch_tenants(settings, Path(tmp))


def is_retryable(exc: BaseException) -> bool:
    """Infrastructure trouble that may pass (Totara busy or down, Redis away, disk): the error
    says so by its type; Redis' and the operating system's own errors count as such too."""
    return isinstance(exc, RetryableError | redis.RedisError | OSError)


def summarize(result: Any, seconds: float) -> tuple[str, str]:
    """The status of a TenantResult and one line about it for the log."""
    status = str(getattr(result, "status", runs.RunStatus.FAILED))
    version = getattr(result, "version", None)
    message = str(getattr(result, "message", ""))
    text = f"finished in {seconds:.1f}s with status {status}"
    text += f" (version {version})" if version else ""
    text += f": {message}" if message else ""
    return status, text


class OutcomeKind(StrEnum):
    TRAINED = "trained"  # the pipeline ran: ``result`` says how it went
    LOCKED = "locked"  # another worker trains the tenant: wait and try again
    DUPLICATE = "duplicate"  # a copy of the event finished while this one waited
    TENANTS = "tenants"  # the tenants to fan an event out to


@dataclass
class Outcome:
    kind: OutcomeKind
    result: Any = None  # TenantResult for TRAINED
    tenants: list[str] = field(default_factory=list)
    holder: str | None = None  # who holds the lock, for LOCKED


@dataclass
class JobContext:
    settings: Settings
    client: redis.Redis  # the training thread's own client (long timeouts)
    markers: DoneMarkers
    locks: LockRegistry
    train_fn: TrainFn = default_train_fn
    tenants_fn: TenantsFn = default_tenants_fn
    lock_ttl: float = DEFAULT_TTL_SECONDS
    owner: str | None = None


def run_train(ctx: JobContext, event: Event) -> Outcome:
    tenant = event.fields["tenant"]
    lock = TenantLock(ctx.client, tenant, ttl=ctx.lock_ttl, owner=ctx.owner)
    if not lock.acquire():
        return Outcome(OutcomeKind.LOCKED, holder=lock.holder())
    ctx.locks.add(lock)
    try:
        with lock.renewing():
            # The copy that waited for the lock may find its twin finished in the meantime.
            if ctx.markers.is_done(event.id):
                return Outcome(OutcomeKind.DUPLICATE)
            result = ctx.train_fn(ctx.settings, ctx.client, tenant,
                                  algorithm=event.fields.get("algorithm"),
                                  force=bool(event.fields.get("force", False)))
            # Marked while the lock is still held, so no copy can start between the two.
            ctx.markers.mark(event.id, str(getattr(result, "status", "?")))
            return Outcome(OutcomeKind.TRAINED, result=result)
    finally:
        ctx.locks.discard(lock)


def run_tenants(ctx: JobContext, event: Event) -> Outcome:
    tenants = [str(t) for t in ctx.tenants_fn(ctx.settings)]
    return Outcome(OutcomeKind.TENANTS, tenants=tenants)
