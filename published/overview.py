"""What is published, per tenant, read in two pipelined round trips.

The health check, the status page and the tenant metrics all show the same facts: each tenant's
current version, fields of its meta hash and of its latest run, and the scheduler's period.
This module is light (redis and key names only), so the API can use it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from published import keys


@dataclass
class TenantState:
    tenant: str
    version: str | None
    meta: dict[str, str]  # the requested meta fields; "" where absent
    run: dict[str, str]  # the requested last_run fields; "" where absent


@dataclass
class Overview:
    total: int  # tenants ever published, before ``limit``
    tenants: list[TenantState]
    leader: str  # keys.SCHEDULE_LEADER, "" when no period was claimed yet


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace") if raw else ""


def read(client: redis.Redis, meta_fields: Sequence[str], run_fields: Sequence[str],
         limit: int) -> Overview:
    """The first ``limit`` tenants in numeric order; raises redis.RedisError when unreachable."""
    # Members are tenant ids the publisher wrote; anything else (hand-edited) is shown as it
    # reads, never an error.
    published = sorted((_text(t) for t in client.smembers(keys.TENANTS)),
                       key=lambda t: (len(t), t))
    tenants = published[:limit]
    pipe = client.pipeline(transaction=False)
    for tenant in tenants:
        pipe.get(keys.current(tenant))
    pipe.get(keys.SCHEDULE_LEADER)
    *versions, leader = pipe.execute()
    versions = [_text(v) or None for v in versions]
    pipe = client.pipeline(transaction=False)
    for tenant, version in zip(tenants, versions, strict=True):
        pipe.hmget(keys.meta(tenant, version or "none"), list(meta_fields))
        pipe.hmget(keys.last_run(tenant), list(run_fields))
    replies = pipe.execute() if tenants else []
    states = [TenantState(tenant, version,
                          {f: _text(v) for f, v in zip(meta_fields, replies[2 * i], strict=True)},
                          {f: _text(v) for f, v in zip(run_fields, replies[2 * i + 1],
                                                       strict=True)})
              for i, (tenant, version) in enumerate(zip(tenants, versions, strict=True))]
    return Overview(len(published), states, _text(leader))
