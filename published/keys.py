"""The Redis key layout shared by the publisher (published.versions) and the API.

Every key of a tenant carries the tenant in a hash tag, ``ml:{<tenant>}:...``, so one tenant's
keys live in one Redis Cluster slot: the pointer check-and-set script and the version clean-up
touch a single slot. Published data is versioned; readers follow ``current``. docs/redis-keys.md
describes each key.
"""

from __future__ import annotations

# Fixed bucket counts: users and items are spread over hashes (field = id) so that a version has
# a bounded number of keys of bounded size, whatever the tenant's size.
USER_BUCKETS = 1024
ITEM_BUCKETS = 256

# Set of tenants that have ever been published; only read to tell "no model yet" from "no such
# tenant" when a tenant has no pointer.
TENANTS = "ml:tenants"
# String: the start (unix seconds) of the newest retrain period claimed by a scheduler; moved
# forward by compare-and-set, so one export-ready is published per period however many workers.
SCHEDULE_LEADER = "ml:scheduler:leader"


def done(event_id: str) -> str:
    """String with expiry: the event was fully handled (its outcome); duplicates are skipped."""
    return f"ml:consumer:done:{event_id}"


def deliveries(message_hash: str) -> str:
    """Integer with expiry: redeliveries of one message on a transport that does not count them
    (consumer.redeliveries); past ``ML_MAX_DELIVERIES`` deliveries it is dead-lettered."""
    return f"ml:consumer:deliveries:{message_hash}"


def current(tenant: str) -> str:
    """String: id of the published version."""
    return f"ml:{{{tenant}}}:current"


def versions(tenant: str) -> str:
    """Sorted set: every version whose keys may exist, scored by creation time (ms)."""
    return f"ml:{{{tenant}}}:versions"


def retired(tenant: str) -> str:
    """Sorted set: versions replaced by a newer one, scored by the time they were replaced (ms)."""
    return f"ml:{{{tenant}}}:retired"


def lock(tenant: str) -> str:
    """String with expiry: the worker that trains this tenant now."""
    return f"ml:{{{tenant}}}:lock"


def scheduled(tenant: str) -> str:
    """String: the newest retrain time (unix seconds) of the tenant claimed by a scheduler, when
    ML_RETRAIN_SPREAD gives each tenant its own time; moved forward by compare-and-set."""
    return f"ml:{{{tenant}}}:scheduled"


def last_run(tenant: str) -> str:
    """Hash: outcome of the tenant's latest training run (status, message, at, version, ...)."""
    return f"ml:{{{tenant}}}:last_run"


def recent(tenant: str, user_id: int) -> str:
    """List of the user's latest interaction events (JSON), newest first, bounded, expiring."""
    return f"ml:{{{tenant}}}:recent:{user_id}"


def meta(tenant: str, version: str) -> str:
    """Hash: status (trained | not_trained), algorithm, sizes, quality, times of a version."""
    return f"ml:{{{tenant}}}:v:{version}:meta"


def model(tenant: str, version: str) -> str:
    """Hash of raw little-endian arrays for real-time scoring (see published.versions)."""
    return f"ml:{{{tenant}}}:v:{version}:model"


def popular(tenant: str, version: str) -> str:
    """String: packed per-type popularity lists (published.packing, 5 sections)."""
    return f"ml:{{{tenant}}}:v:{version}:pop"


def user_bucket(tenant: str, version: str, user_id: int) -> str:
    """Hash: field = Totara user id, value = packed per-type lists (5 sections)."""
    return f"ml:{{{tenant}}}:v:{version}:u:{user_id % USER_BUCKETS}"


def item_bucket(tenant: str, version: str, item_number: int) -> str:
    """Hash: field = item key (``engage_article12``), value = packed similar items (1 section).

    Bucketed by the numeric id, so ``engage_article12`` and ``engage_microlearning12`` share a
    bucket and the micro-learning retry costs no extra round trip.
    """
    return f"ml:{{{tenant}}}:v:{version}:i:{item_number % ITEM_BUCKETS}"


def history_bucket(tenant: str, version: str, user_id: int) -> str:
    """Hash: field = Totara user id, value = the user's packed interactions (published.explore)."""
    return f"ml:{{{tenant}}}:v:{version}:h:{user_id % USER_BUCKETS}"


def item_info_bucket(tenant: str, version: str, item_number: int) -> str:
    """Hash: field = item key, value = the item's labels, text and counts (JSON, the explorer)."""
    return f"ml:{{{tenant}}}:v:{version}:f:{item_number % ITEM_BUCKETS}"


def figures(tenant: str, version: str) -> str:
    """String: the version's quality history, list coverage and most recommended items (JSON)."""
    return f"ml:{{{tenant}}}:v:{version}:figures"


def version_keys(tenant: str, version: str) -> list[str]:
    """Every key a version can own, for deletion without SCAN."""
    base = f"ml:{{{tenant}}}:v:{version}"
    return ([f"{base}:meta", f"{base}:model", f"{base}:pop", f"{base}:figures"]
            + [f"{base}:u:{b}" for b in range(USER_BUCKETS)]
            + [f"{base}:i:{b}" for b in range(ITEM_BUCKETS)]
            + [f"{base}:h:{b}" for b in range(USER_BUCKETS)]
            + [f"{base}:f:{b}" for b in range(ITEM_BUCKETS)])
