"""The slow work of an event, run on the training thread (never on the connection thread).

- ``train``: take the tenant's lock, call the pipeline, mark the event done, release the lock.
- fan-out of ``export-ready`` / ``retrain`` without a tenant list: read tenants.csv (a download
  that can wait minutes while Totara answers 202).

Jobs return an ``Outcome`` or raise; the worker decides on ack, retry or dead-letter.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import redis

from consumer.dedup import DoneMarkers
from consumer.events import Event
from published import runs
from published.locks import DEFAULT_TTL_SECONDS, LockRegistry
from recommender.service import TenantsFn, TrainFn, TrainingService
from runtime.config import Settings
from runtime.errors import RetryableError

log = logging.getLogger(__name__)

# Statuses of a run after which the event is done for good (re-exported for the worker).
SUCCESS_STATUSES = runs.SUCCESS_STATUSES


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
        return Outcome(OutcomeKind.DUPLICATE)
    if getattr(result, "status", None) == runs.RunStatus.LOCKED:
        return Outcome(OutcomeKind.LOCKED, holder=result.holder)
    return Outcome(OutcomeKind.TRAINED, result=result)


def run_tenants(ctx: JobContext, event: Event) -> Outcome:
    return Outcome(OutcomeKind.TENANTS, tenants=ctx.service.tenants())
