"""Publish a tenant's lists and model to Redis as a new version, switched in atomically.

See docs/redis-keys.md. A ``VersionWriter`` registers its version, writes everything in pipelined
chunks, then ``commit`` moves the tenant's pointer with a check-and-set script, which also checks
that the writer still holds the tenant's lock. Readers follow the pointer, so they see the old
version or the new one, never a mix. ``collect_garbage`` deletes replaced versions after a grace
period and the leftovers of runs that died half-way; each deletion checks again, in the same
script, that the version is not live, so concurrent writers never delete what another serves.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

import redis

from published import keys
from published.locks import held_token
from runtime.errors import LockLostError, StaleVersionError

log = logging.getLogger(__name__)

# A writer touches its version's score at every flush; one idle this long died half-way.
ORPHAN_IDLE_SECONDS = 120
# Commands per pipeline round trip: large enough to amortise latency, small enough that one
# flush never blocks Redis noticeably.
CHUNK_COMMANDS = 256
CHUNK_BYTES = 4 << 20

# KEYS: current, versions, retired, lock. ARGV: version, now_ms, lock token ("": no lock).
# -2: the lock is not (or no longer) the writer's; -1: the version was collected meanwhile;
# 0: a newer (or the same) version is current; 1: switched.
_SWITCH = """
if ARGV[3] ~= '' and redis.call('GET', KEYS[4]) ~= ARGV[3] then return -2 end
if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return -1 end
local cur = redis.call('GET', KEYS[1])
if cur and cur >= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1])
if cur then redis.call('ZADD', KEYS[3], ARGV[2], cur) end
return 1
"""
# Check and delete in one step, so a version switched in between a check and a delete can
# never be deleted. KEYS: current, versions, retired, then the version's own keys. ARGV:
# version, retired_before_ms, touched_before_ms. A version replaced after retired_before, or
# unreplaced and flushed by its writer after touched_before, is kept; the live one always is.
# 1: deleted; 0: kept.
_DELETE = """
local v = ARGV[1]
if redis.call('GET', KEYS[1]) == v then return 0 end
local replaced = redis.call('ZSCORE', KEYS[3], v)
local touched = redis.call('ZSCORE', KEYS[2], v)
if replaced then
  if tonumber(replaced) > tonumber(ARGV[2]) then return 0 end
elseif touched and tonumber(touched) > tonumber(ARGV[3]) then
  return 0
end
redis.call('ZREM', KEYS[2], v)
redis.call('ZREM', KEYS[3], v)
for first = 4, #KEYS, 500 do
  redis.call('UNLINK', unpack(KEYS, first, math.min(first + 499, #KEYS)))
end
return 1
"""
# Cut-off that keeps nothing back: any version but the live one is deleted.
_ANY = 2**62


def new_version(now: float | None = None) -> str:
    """A version id that sorts by creation time: 13-digit milliseconds, then random hex."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"{ms:013d}-{secrets.token_hex(4)}"


class VersionWriter:
    """Writes one new version of one tenant; nothing is visible to readers before ``commit``.

    ``fence`` is the token of the tenant's lock the switch requires to still be held; by default
    the lock the calling code holds (published.locks.held_token), none outside a lock.
    """

    def __init__(self, client: redis.Redis, tenant: str, version: str | None = None,
                 fence: str | None = None) -> None:
        self.client = client
        self.tenant = tenant
        self.version = version or new_version()
        self.fence = fence if fence is not None else held_token(tenant)
        self.bytes_written = 0
        self.keys_written: set[str] = set()
        self._touch()

    def _touch(self) -> None:
        self.client.zadd(keys.versions(self.tenant), {self.version: int(time.time() * 1000)})

    def _flush(self, pipe: redis.client.Pipeline) -> None:
        pipe.zadd(keys.versions(self.tenant), {self.version: int(time.time() * 1000)}, xx=True)
        pipe.execute()

    def _write_hashes(self, fields_by_key: Mapping[str, Mapping[str, bytes]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        pending = pending_bytes = 0
        for key, mapping in fields_by_key.items():
            pipe.hset(key, mapping=mapping)
            self.keys_written.add(key)
            pending += 1
            size = sum(len(v) for v in mapping.values())
            pending_bytes += size
            self.bytes_written += size
            if pending >= CHUNK_COMMANDS or pending_bytes >= CHUNK_BYTES:
                self._flush(pipe)
                pending = pending_bytes = 0
        if pending:
            self._flush(pipe)

    def write_model(self, arrays: Mapping[str, bytes]) -> None:
        self._write_hashes({keys.model(self.tenant, self.version): arrays})

    def write_popular(self, blob: bytes) -> None:
        self.client.set(keys.popular(self.tenant, self.version), blob)
        self.bytes_written += len(blob)

    def _write_bucketed(self, bucket: Callable[[str, str, int], str],
                        entries: Iterable[tuple[str, int, bytes]]) -> None:
        by_bucket: dict[str, dict[str, bytes]] = defaultdict(dict)
        for name, number, blob in entries:
            by_bucket[bucket(self.tenant, self.version, number)][name] = blob
        self._write_hashes(by_bucket)

    def write_users(self, lists: Iterable[tuple[int, bytes]]) -> None:
        """``(user id, packed lists)`` pairs; call once per batch so memory stays bounded."""
        self._write_bucketed(keys.user_bucket, ((str(u), u, blob) for u, blob in lists))

    def write_items(self, lists: Iterable[tuple[str, int, bytes]]) -> None:
        """``(item key, item number, packed similar items)`` triples."""
        self._write_bucketed(keys.item_bucket, lists)

    def write_histories(self, histories: Iterable[tuple[int, bytes]]) -> None:
        """``(user id, packed interactions)`` pairs for the explorer (published.explore)."""
        self._write_bucketed(keys.history_bucket, ((str(u), u, blob) for u, blob in histories))

    def write_item_infos(self, infos: Iterable[tuple[str, int, bytes]]) -> None:
        """``(item key, item number, ItemInfo bytes)`` triples for the explorer."""
        self._write_bucketed(keys.item_info_bucket, infos)

    def write_figures(self, blob: bytes) -> None:
        self.client.set(keys.figures(self.tenant, self.version), blob)
        self.bytes_written += len(blob)

    def commit(self, meta: Mapping[str, str | int | float]) -> None:
        """Write the meta hash and switch the pointer; raise StaleVersionError if refused, or
        LockLostError when the writer's lock (``fence``) is no longer held."""
        fields = {k: str(v) for k, v in meta.items()}
        fields.update(version=self.version, tenant=self.tenant)
        self.client.hset(keys.meta(self.tenant, self.version), mapping=fields)
        outcome = self.client.register_script(_SWITCH)(
            keys=[keys.current(self.tenant), keys.versions(self.tenant),
                  keys.retired(self.tenant), keys.lock(self.tenant)],
            args=[self.version, int(time.time() * 1000), self.fence or ""])
        if outcome != 1:
            self.abort()
            self._refused(outcome)
        self.client.sadd(keys.TENANTS, self.tenant)
        log.info("tenant %s: published version %s (%d bytes)", self.tenant, self.version,
                 self.bytes_written)

    def _refused(self, outcome: int) -> None:
        what = f"version {self.version} of tenant {self.tenant} was not published"
        if outcome == -2:
            raise LockLostError(f"{what}: the tenant's lock expired or was taken by another "
                                "worker during the run; the live version is left as it was")
        reason = "it was collected as abandoned" if outcome == -1 else "a newer one is current"
        raise StaleVersionError(f"{what}: {reason}")

    def abort(self) -> None:
        delete_version(self.client, self.tenant, self.version)


def delete_version(client: redis.Redis, tenant: str, version: str, *,
                   retired_before_ms: int = _ANY, touched_before_ms: int = _ANY) -> bool:
    """Delete ``version`` unless it is live (or replaced or flushed after the cut-offs, in ms);
    True when it was deleted. The check and the delete are one script: a version switched in
    meanwhile is never deleted."""
    # Every key is named, so the script touches only the tenant's slot on Redis Cluster.
    names = [keys.current(tenant), keys.versions(tenant), keys.retired(tenant),
             *keys.version_keys(tenant, version)]
    return bool(client.register_script(_DELETE)(
        keys=names, args=[version, retired_before_ms, touched_before_ms]))


def current_version(client: redis.Redis, tenant: str) -> str | None:
    value = client.get(keys.current(tenant))
    return value.decode() if value is not None else None


def current_meta(client: redis.Redis, tenant: str) -> dict[str, str] | None:
    version = current_version(client, tenant)
    if version is None:
        return None
    raw = client.hgetall(keys.meta(tenant, version))
    return {k.decode(): v.decode() for k, v in raw.items()}


def collect_garbage(client: redis.Redis, tenant: str, grace_seconds: float,
                    now: float | None = None,
                    orphan_idle_seconds: float = ORPHAN_IDLE_SECONDS) -> list[str]:
    """Delete versions replaced more than ``grace_seconds`` ago and abandoned partial versions.

    A partial version is abandoned once its writer has not flushed for ``orphan_idle_seconds``;
    a caller holding the tenant's training lock passes 0, since no other writer can be alive.
    """
    now_ms = int((time.time() if now is None else now) * 1000)
    retired_before = now_ms - int(grace_seconds * 1000)
    touched_before = now_ms - int(orphan_idle_seconds * 1000)
    # A first look picks the candidates; the delete script checks each again, atomically.
    current = current_version(client, tenant)
    retired = {v.decode(): s for v, s in client.zrange(keys.retired(tenant), 0, -1,
                                                        withscores=True)}
    deleted = []
    for raw, touched in client.zrange(keys.versions(tenant), 0, -1, withscores=True):
        version = raw.decode()
        stamp, cutoff = ((retired[version], retired_before) if version in retired
                         else (touched, touched_before))
        if version == current or stamp > cutoff:
            continue
        if delete_version(client, tenant, version, retired_before_ms=retired_before,
                          touched_before_ms=touched_before):
            deleted.append(version)
            log.info("tenant %s: deleted old version %s", tenant, version)
    return deleted
