"""Self-healing after Redis lost its data: republish the saved models from ML_MODELS_DIR.

Redis holds only derived data; the trained models live on disk (publish.modelfile). When a
Redis is restarted empty (no persistence, a failover to an empty replica, a FLUSHALL), every
tenant's pointer is gone and the API answers "not ready yet". A thread of each worker checks
every ``interval`` seconds whether a tenant that has a saved current model has no pointer in
Redis, and republishes it (``recommender.publish.restore``) without retraining.

Once across workers: the restore runs under the tenant's training lock and re-checks the pointer
once it holds the lock, so of many workers noticing the loss together one restores each tenant
and the others find the pointer back. A tenant being trained meanwhile is left to its training.

A saved model that cannot be republished (a damaged file) is reported once, with its traceback,
and not tried again until the tenant's ``current`` model changes; the other tenants are restored
regardless.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import redis

from published import keys
from published.locks import DEFAULT_TTL_SECONDS, LockRegistry, TenantLock
from recommender.publish import modelfile
from runtime.config import Settings

log = logging.getLogger("consumer.recovery")

DEFAULT_INTERVAL_SECONDS = 10.0

RestoreFn = Callable[[Settings, redis.Redis, list[str]], list[Any]]


def default_restore_fn(settings: Settings, client: redis.Redis, tenants: list[str]) -> list[Any]:
    from recommender.publish.restore import restore  # imported late: numpy

    return restore(settings, client, tenants)


class Recovery:
    def __init__(self, settings: Settings, client: redis.Redis, locks: LockRegistry, *,
                 interval: float = DEFAULT_INTERVAL_SECONDS, owner: str | None = None,
                 lock_ttl: float = DEFAULT_TTL_SECONDS,
                 restore_fn: RestoreFn = default_restore_fn) -> None:
        self.settings = settings
        self.client = client
        self.locks = locks
        self.interval = interval
        self.owner = owner
        self.lock_ttl = lock_ttl
        self.restore_fn = restore_fn
        self.restored: list[str] = []  # tenants this worker republished, oldest first
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._unavailable = False  # log a Redis outage once, not every interval
        self._broken: dict[str, str | None] = {}  # tenant -> saved version that failed to load

    def missing_tenants(self) -> list[str]:
        """Tenants with a saved current model but no pointer in Redis."""
        saved = modelfile.saved_tenants(self.settings.models_dir)
        if not saved:
            return []
        pipe = self.client.pipeline(transaction=False)
        for tenant in saved:
            pipe.exists(keys.current(tenant))
        return [t for t, found in zip(saved, pipe.execute(), strict=True) if not found]

    def check_once(self) -> list[str]:
        """Restore every tenant that needs it and that no other worker is handling."""
        done = []
        for tenant in self.missing_tenants():
            if self._stop.is_set():
                break
            saved = modelfile.current_version(self.settings.models_dir, tenant)
            if tenant in self._broken and self._broken[tenant] == saved:
                continue  # reported already; a new training replaces the file
            try:
                restored = self._restore(tenant)
            except redis.RedisError:
                raise  # Redis itself is unwell: the loop reports that once
            except Exception:  # this tenant's files; the other tenants still need restoring
                self._give_up(tenant, saved)
                continue
            self._broken.pop(tenant, None)
            if restored:
                done.append(tenant)
        return done

    def _give_up(self, tenant: str, saved: str | None) -> None:
        log.exception("tenant %s: the saved model %s in %s cannot be republished; not trying "
                      "again until a training replaces it", tenant, saved,
                      self.settings.models_dir)
        self._broken[tenant] = saved

    def _restore(self, tenant: str) -> bool:
        lock = TenantLock(self.client, tenant, ttl=self.lock_ttl, owner=self.owner)
        if not lock.acquire():
            return False  # being trained or restored elsewhere
        self.locks.add(lock)
        try:
            with lock.renewing():
                if self.client.exists(keys.current(tenant)):
                    return False  # another worker restored it just before we took the lock
                log.warning("tenant %s: Redis has no published model; republishing the saved "
                            "one from %s", tenant, self.settings.models_dir)
                results = self.restore_fn(self.settings, self.client, [tenant])
        finally:
            self.locks.discard(lock)
        for result in results:
            log.warning("tenant %s: restore %s: %s", getattr(result, "tenant", tenant),
                        getattr(result, "status", "?"), getattr(result, "message", ""))
        published = any(getattr(r, "status", "") == "published" for r in results)
        if published:
            self.restored.append(tenant)
        return published

    def _loop(self) -> None:
        while True:
            try:
                self.check_once()
                if self._unavailable:
                    log.info("recovery: Redis answers again")
                self._unavailable = False
            except (redis.RedisError, OSError) as exc:
                if not self._unavailable:
                    log.warning("recovery: Redis unavailable (%s); checking again every %.0fs",
                                exc, self.interval)
                self._unavailable = True
            except Exception:  # a damaged model file must not end self-healing for the rest
                log.exception("recovery: restoring the saved models failed")
            if self._stop.wait(self.interval):
                return

    def start(self) -> Recovery:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="recovery", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
