"""The slow work of an event, run on the training thread (never on the connection thread).

- ``train``: take the tenant's lock, call the pipeline, mark the event done, release the lock.
- fan-out of ``export-ready`` / ``retrain`` without a tenant list: read tenants.csv (a download
  that can wait minutes while Totara answers 202).

Jobs return an ``Outcome`` or raise; the worker decides on ack, retry or dead-letter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import redis

from consumer.dedup import DoneMarkers
from consumer.events import Event
from published.locks import DEFAULT_TTL_SECONDS, LockRegistry
from recommender.service import TenantsFn, TrainFn, TrainingService
from runtime.config import Settings

log = logging.getLogger(__name__)

# Statuses of a training's result after which the event is done for good
# ("rejected": the promotion gate kept a worse model out; running it again changes nothing).
SUCCESS_STATUSES = ("published", "not_trained", "skipped", "stale", "rejected")
FAILED = "failed"


def is_retryable(exc: BaseException) -> bool:
    """Infrastructure trouble that may pass (Totara busy or down, Redis away, disk)."""
    try:
        from recommender.ingest.download import DownloadError
    except ImportError:  # the module is optional for the consumer's own tests
        DownloadError = None  # noqa: N806
    if DownloadError is not None and isinstance(exc, DownloadError):
        return bool(getattr(exc, "retryable", False))
    return isinstance(exc, redis.RedisError | OSError)


def summarize(result: Any, seconds: float) -> tuple[str, str]:
    """The status of a TenantResult and one line about it for the log."""
    status = str(getattr(result, "status", FAILED))
    version = getattr(result, "version", None)
    message = str(getattr(result, "message", ""))
    text = f"finished in {seconds:.1f}s with status {status}"
    text += f" (version {version})" if version else ""
    text += f": {message}" if message else ""
    return status, text


@dataclass
class Outcome:
    kind: str  # "trained" | "locked" | "duplicate" | "tenants"
    result: Any = None  # TenantResult for "trained"
    tenants: list[str] = field(default_factory=list)
    holder: str | None = None  # who holds the lock, for "locked"


@dataclass
class JobContext:
    settings: Settings
    client: redis.Redis  # the training thread's own client (long timeouts)
    markers: DoneMarkers
    locks: LockRegistry
    train_fn: TrainFn | None = None  # replaces the pipeline, for tests
    tenants_fn: TenantsFn | None = None
    lock_ttl: float = DEFAULT_TTL_SECONDS
    owner: str | None = None
    service: TrainingService = field(init=False)

    def __post_init__(self) -> None:
        self.service = TrainingService(self.settings, self.client, owner=self.owner,
                                       lock_ttl=self.lock_ttl, locks=self.locks,
                                       train_fn=self.train_fn, tenants_fn=self.tenants_fn)


def run_train(ctx: JobContext, event: Event) -> Outcome:
    result = ctx.service.train(
        event.fields["tenant"], algorithm=event.fields.get("algorithm"),
        force=bool(event.fields.get("force", False)),
        # The copy that waited for the lock may find its twin finished in the meantime.
        still_wanted=lambda: not ctx.markers.is_done(event.id),
        # Marked while the lock is still held, so no copy can start between the two.
        finished=lambda r: ctx.markers.mark(event.id, str(getattr(r, "status", "?"))))
    if result is None:
        return Outcome("duplicate")
    if getattr(result, "status", None) == "locked":
        return Outcome("locked", holder=result.holder)
    return Outcome("trained", result=result)


def run_tenants(ctx: JobContext, event: Event) -> Outcome:
    return Outcome("tenants", tenants=ctx.service.tenants())
