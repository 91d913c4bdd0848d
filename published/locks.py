"""Per-tenant training lock in Redis: one training per tenant at a time, across all hosts.

``SET key token NX PX ttl`` takes it; a timer thread renews it while the training runs, so a
short TTL can be used and a worker that dies frees its tenant within one TTL. Renewal and
release compare the token first (Lua), so a worker whose lock expired never extends or deletes
the lock a second worker has taken since. The worker and ``python -m recommender train`` both
take it, so a training started by hand never races a worker's training of the same tenant.

A lock only fences what runs while it is held: renewal may fail for longer than the TTL (a
stalled connection, a thread starved of the interpreter during a fit) and another worker take
the lock meanwhile; when nobody took it, the next renewal takes it back. So ``renewing`` records the
token for the code it runs (``held_token``), and the publish step's pointer switch checks it in
the same script that moves the pointer (published.versions): a run whose lock was lost never
publishes, however long its fit took.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import redis

from published import keys

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 60.0

# tenant -> token of the locks held by the code running here (per thread: a context variable).
_HELD: ContextVar[dict[str, str] | None] = ContextVar("held_tenant_locks", default=None)

# A lock that expired while nobody took it is taken back: its renewals were late (a starved
# thread, a Redis blip), and no other run can have started since. Taken by another: lost.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def held_token(tenant: str) -> str | None:
    """The token of ``tenant``'s lock when the calling code runs under ``renewing``, else None."""
    return (_HELD.get() or {}).get(tenant)


def worker_name() -> str:
    """Who holds a lock, for operators reading the key: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class TenantLock:
    def __init__(self, client: redis.Redis, tenant: str, *, ttl: float = DEFAULT_TTL_SECONDS,
                 owner: str | None = None) -> None:
        self.client = client
        self.tenant = tenant
        self.key = keys.lock(tenant)
        self.ttl_ms = max(1, int(ttl * 1000))
        self.token = f"{owner or worker_name()}:{uuid.uuid4().hex}"
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False  # set when a renewal found the lock gone or taken

    def acquire(self) -> bool:
        return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else value

    def renew(self) -> bool:
        ok = bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))
        if not ok:
            self.lost = True
        return ok

    def release(self) -> bool:
        self._stop.set()
        return bool(self._release(keys=[self.key], args=[self.token]))

    def _renew_loop(self) -> None:
        # Three renewals per TTL: one failed round trip (a Redis blip) does not lose the lock.
        interval = self.ttl_ms / 3000
        while not self._stop.wait(interval):
            try:
                if not self.renew():
                    log.warning("lock of tenant %s was lost (expired or taken); the training "
                                "goes on, the publish step refuses to go back in time", self.tenant)
                    return
            except (redis.RedisError, OSError) as exc:
                log.warning("could not renew the lock of tenant %s: %s", self.tenant, exc)

    @contextmanager
    def renewing(self) -> Iterator[TenantLock]:
        """Keep the (acquired) lock alive for the duration of the block, then release it."""
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, daemon=True,
                                         name=f"lock-renew-{self.tenant}")
        self._renewer.start()
        held = _HELD.set({**(_HELD.get() or {}), self.tenant: self.token})
        try:
            yield self
        finally:
            _HELD.reset(held)
            self._stop.set()
            self._renewer.join(timeout=5)
            try:
                self.release()
            except (redis.RedisError, OSError) as exc:
                # It expires by itself within one TTL.
                log.warning("could not release the lock of tenant %s: %s", self.tenant, exc)


class LockRegistry:
    """The locks this process holds, so a stopping worker can free them at once."""

    def __init__(self) -> None:
        self._locks: set[TenantLock] = set()
        self._mutex = threading.Lock()

    def add(self, lock: TenantLock) -> None:
        with self._mutex:
            self._locks.add(lock)

    def discard(self, lock: TenantLock) -> None:
        with self._mutex:
            self._locks.discard(lock)

    def release_all(self) -> int:
        with self._mutex:
            held, self._locks = list(self._locks), set()
        released = 0
        for lock in held:
            try:
                released += lock.release()
            except (redis.RedisError, OSError):
                pass
        return released
