"""A training run as Redis shows it: its status, the meta of the version it made, its record.

The pipeline builds a ``RunMeta`` for every version it writes (the version's ``meta`` hash and the
saved model's JSON sidecar) and a ``LastRun`` for every run (the tenant's ``last_run`` hash); see
docs/redis-keys.md. The health check, the status page and the tenant metrics read both back with
``from_fields``, which never raises: a value that does not parse reads as None, since a
half-written or hand-edited hash must not take the health check down with it.

The enums' values are the strings on the wire (Redis, logs, metrics labels), which they equal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar, get_type_hints

from published import keys
from runtime.errors import capped

if TYPE_CHECKING:  # the command line imports the statuses at start: no client library for that
    import redis

E = TypeVar("E", bound=StrEnum)
# Integers beyond this are not counts we wrote; they would also overflow a float gauge.
_MAX_INT = 2**63
# A run's message as recorded (the pages show 300 characters): an unexpected error's text can
# quote anything, at any length.
MAX_MESSAGE_CHARS = 2000


class RunStatus(StrEnum):
    PUBLISHED = "published"
    NOT_TRAINED = "not_trained"  # too few users or items: published without lists
    REJECTED = "rejected"  # the promotion gate kept a worse model out
    FAILED = "failed"
    SKIPPED = "skipped"  # this export is already published
    STALE = "stale"  # a newer version became current meanwhile
    LOCKED = "locked"  # the command line only: another process trains the tenant
    LOCK_LOST = "lock_lost"  # the tenant's lock was taken during the run: nothing published


# After these a train event is done for good and the tenant is served what it should be
# ("rejected": running the same export again changes nothing).
SUCCESS_STATUSES = frozenset({RunStatus.PUBLISHED, RunStatus.NOT_TRAINED, RunStatus.SKIPPED,
                              RunStatus.STALE, RunStatus.REJECTED})


class VersionStatus(StrEnum):
    TRAINED = "trained"
    NOT_TRAINED = "not_trained"  # no lists, only ``message``


class Fit(StrEnum):
    FULL = "full"
    INCREMENTAL = "incremental"  # continued from the saved model ``incremental_from``


def parse_number(raw: str) -> float | None:
    """A finite number, or None: never raises, whatever ``raw`` is."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None  # NaN or infinity says nothing


def _int(raw: str) -> int | None:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        number = parse_number(raw)
        if number is None or not number.is_integer():
            return None
        value = int(number)
    return value if abs(value) < _MAX_INT else None


def _text(raw: str) -> str | None:
    return raw if isinstance(raw, str) and raw else None


def _enum(kind: type[E]) -> Callable[[str], E | None]:
    def parse(raw: str) -> E | None:
        try:
            return kind(raw)
        except ValueError:
            return None
    return parse


# How a field of each type is read from its text.
_PARSERS: dict[Any, Callable[[str], Any]] = {
    float | None: parse_number, int | None: _int, str | None: _text,
    VersionStatus | None: _enum(VersionStatus), Fit | None: _enum(Fit)}
RERANK_PREFIX = "rerank_validation_"


@dataclass
class RunMeta:
    """The ``meta`` of a version (docs/redis-keys.md); None: the field is absent."""

    status: VersionStatus | None = None
    algorithm: str | None = None
    n_users: int | None = None
    n_items: int | None = None
    n_interactions: int | None = None
    export_fingerprint: str | None = None
    top_k: int | None = None
    message: str | None = None  # not_trained: the reason
    epochs: int | None = None
    components: int | None = None
    epochs_trained: int | None = None
    precision_at_10: float | None = None
    recall_at_10: float | None = None
    ndcg_at_10: float | None = None
    auc: float | None = None
    fit: Fit | None = None
    incremental_from: str | None = None
    incremental_runs: int | None = None
    validation_pairs: str | None = None  # "random" (full fit) or "new" (incremental)
    warm_baseline_precision_at_10: float | None = None
    full_fit_precision_at_10: float | None = None
    identity_weight: float | None = None
    blend_weight: float | None = None
    item_item_lambda: float | None = None
    item_item_neighbours: int | None = None  # per item; 0: every item (the dense closed form)
    reranked: int | None = None
    # "rerank_validation_<layer>" fields: validation P@10 by layer ("blend", "reranked")
    rerank_validation: dict[str, float] = field(default_factory=dict)
    trained_at: float | None = None
    params: dict[str, Any] | None = None  # the JSON sidecar only: the training parameters

    def to_dict(self) -> dict[str, Any]:
        """The values of the JSON sidecar; the meta hash holds the scalars among them as text.

        Values go out as the pipeline set them (no rounding or casting here), so the text of
        every field is what it always was; absent fields are left out.
        """
        out: dict[str, Any] = {}
        for name in FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value.value if isinstance(value, StrEnum) else value
        for layer, precision in self.rerank_validation.items():
            out[RERANK_PREFIX + layer] = precision
        if self.params is not None:
            out["params"] = self.params
        return out

    @classmethod
    def from_fields(cls, raw: Mapping[str, str]) -> RunMeta:
        """Read a meta hash (its text values); what is absent or does not parse is None."""
        values = {name: _PARSERS[kind](raw[name]) for name, kind in _META_TYPES.items()
                  if name in raw}
        rerank = {k[len(RERANK_PREFIX):]: parse_number(v) for k, v in raw.items()
                  if isinstance(k, str) and k.startswith(RERANK_PREFIX)}
        return cls(**values, rerank_validation={k: v for k, v in rerank.items() if v is not None})


# The meta hash's fixed fields (rerank_validation_* vary, params stays in the JSON sidecar).
_META_TYPES = {name: kind for name, kind in get_type_hints(RunMeta).items() if kind in _PARSERS}
FIELDS = tuple(_META_TYPES)


@dataclass
class LastRun:
    """The ``last_run`` hash of a tenant: the outcome of its latest training run."""

    status: RunStatus | None
    message: str = ""
    at: float | None = None  # unix seconds
    version: str | None = None
    algorithm: str = ""
    precision_at_10: float | None = None

    def write(self, client: redis.Redis, tenant: str) -> None:
        """Record the run; raises redis.RedisError. Absent values are written as ""."""
        client.hset(keys.last_run(tenant), mapping={
            "status": self.status.value if self.status else "",
            "message": capped(self.message, MAX_MESSAGE_CHARS),
            "at": "" if self.at is None else self.at, "version": self.version or "",
            "algorithm": self.algorithm,
            "precision_at_10": "" if self.precision_at_10 is None else self.precision_at_10})

    @classmethod
    def from_fields(cls, raw: Mapping[str, str]) -> LastRun:
        """Read a last_run hash (its text values); what is absent or does not parse is None."""
        return cls(status=_enum(RunStatus)(raw.get("status", "")),
                   message=_text(raw.get("message")) or "", at=parse_number(raw.get("at", "")),
                   version=_text(raw.get("version")),
                   algorithm=_text(raw.get("algorithm")) or "",
                   precision_at_10=parse_number(raw.get("precision_at_10", "")))


RUN_FIELDS = tuple(f.name for f in fields(LastRun))
