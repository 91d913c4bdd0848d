"""Reads what the training pipeline publishes in Redis (docs/redis-keys.md), with caching.

The hot path costs one round trip: the tenant's ``current`` pointer is cached for at most
``pointer_ttl`` seconds, and a version's meta hash and popularity lists (small, immutable once
published) are cached with it. The model arrays for fold-in are loaded on first need. When the
pointer moves, the old version's cached data is dropped with it, so memory follows what is
current. Entries are replaced whole, never mutated, so gthread workers need no lock to read them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import redis

from api.foldin import ModelArrays
from published import keys, packing, recent
from published.savedmodel import FOLDIN_FIELDS
from runtime.errors import CorruptListError

log = logging.getLogger(__name__)

# Bounds the per-tenant cache against requests naming many made-up tenants.
MAX_CACHED_TENANTS = 4096


class Version:
    """One published version of a tenant, as long as it is current."""

    __slots__ = ("tenant", "version", "meta", "status", "popular", "_model", "_loaded", "_lock",
                 "_warned")

    def __init__(self, tenant: str, version: str, meta: dict[str, str],
                 popular: bytes | None) -> None:
        self.tenant = tenant
        self.version = version
        self.meta = meta
        # An empty meta means the version's keys are gone or incomplete: treat as not ready.
        self.status = meta.get("status", "")
        self.popular = popular
        self._model: ModelArrays | None = None
        self._loaded = False
        self._lock = threading.Lock()
        self._warned = False

    def popular_list(self, type_code: int) -> tuple[np.ndarray, np.ndarray]:
        """The popularity list of a type; empty when there is none or it cannot be read."""
        if self.popular is not None:
            try:
                return packing.unpack(self.popular, type_code)
            except CorruptListError as exc:
                self.unreadable("the popularity list", exc)
        return np.empty(0, "<u4"), np.empty(0, "<f4")

    def unreadable(self, what: str, exc: CorruptListError) -> None:
        """Log a value of this version that does not decode, answered without: a warning the
        first time, DEBUG after (damaged values would otherwise log a line per request)."""
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        log.log(level, "tenant %s version %s: %s cannot be read (%s); answered without it, "
                "further unreadable values of this version are logged at DEBUG", self.tenant,
                self.version, what, exc)

    def model(self, client: redis.Redis) -> ModelArrays | None:
        """The fold-in arrays, read once per version (several MB: never per request)."""
        if self._loaded:
            return self._model
        with self._lock:
            if not self._loaded:
                values = client.hmget(keys.model(self.tenant, self.version), FOLDIN_FIELDS)
                self._model = ModelArrays.from_fields(dict(zip(FOLDIN_FIELDS, values,
                                                               strict=True)))
                self._loaded = True
        return self._model


class Reader:
    """Read access for the endpoints; ``client`` returns this process's Redis client."""

    def __init__(self, client: Callable[[], redis.Redis], pointer_ttl: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self._ttl = pointer_ttl
        self._clock = clock
        self._versions: dict[str, tuple[float, Version | None]] = {}
        self._any: tuple[float, bool] = (-1e18, False)

    def version(self, tenant: str) -> Version | None:
        """The tenant's current version, or None when it has never been published."""
        now = self._clock()
        entry = self._versions.get(tenant)
        if entry is not None and now - entry[0] < self._ttl:
            return entry[1]
        client = self.client()
        raw = client.get(keys.current(tenant))
        cached = entry[1] if entry is not None else None
        if raw is None:
            version = None
        elif cached is not None and cached.version == raw.decode() and cached.meta:
            version = cached
        else:
            version = self._load(client, tenant, raw.decode())
        if len(self._versions) >= MAX_CACHED_TENANTS and tenant not in self._versions:
            self._versions = {}
        self._versions[tenant] = (now, version)
        return version

    def _load(self, client: redis.Redis, tenant: str, version: str) -> Version:
        pipe = client.pipeline(transaction=False)
        pipe.hgetall(keys.meta(tenant, version))
        pipe.get(keys.popular(tenant, version))
        meta, popular = pipe.execute()
        return Version(tenant, version, {k.decode(): v.decode() for k, v in meta.items()},
                       popular)

    def any_published(self) -> bool:
        """Whether any tenant was ever published ("not ready yet" versus "no such tenant").

        Only a yes is cached: the change from no to yes (the first training) must show at once
        in every worker; while nothing is published, a request costs one SCARD more.
        """
        now = self._clock()
        if self._any[1] and now - self._any[0] < self._ttl:
            return True
        found = self.client().scard(keys.TENANTS) > 0
        self._any = (now, found)
        return found

    def user_lists(self, version: Version, user_id: int) -> bytes | None:
        """The user's packed per-type lists, None when the user has none in this version."""
        bucket = keys.user_bucket(version.tenant, version.version, user_id)
        return self.client().hget(bucket, str(user_id))

    def similar_lists(self, version: Version, number: int,
                      fields: Sequence[str]) -> list[bytes | None]:
        """Packed similar items of each item key in ``fields`` (all in one bucket)."""
        bucket = keys.item_bucket(version.tenant, version.version, number)
        return self.client().hmget(bucket, fields)

    def recent_events(self, tenant: str, user_id: int) -> list[bytes]:
        """The user's latest interaction events (JSON, newest first)."""
        return self.client().lrange(keys.recent(tenant, user_id), 0, recent.MAX_EVENTS - 1)

    def model(self, version: Version) -> ModelArrays | None:
        return version.model(self.client())
