"""Interaction events into the user's bounded ``recent`` list (docs/redis-keys.md).

The API folds these into a user's scores when the user has no published list yet (a user who
joined after the last training), so what the user just did shows up before the next training.

Recording is idempotent, so an interaction event needs no done marker (consumer.dedup): an entry
already in the user's list (same item, second and rating) is not pushed again. Redis then holds
nothing per interaction event beyond the user's list, which is bounded and expires: a million
events a day cost no more memory than the users they come from (docs/reliability.md).
"""

from __future__ import annotations

import redis

from consumer.events import Event
from published import keys, recent


def entry(event: Event) -> str:
    return recent.entry(event.fields["item_id"], event.fields["timestamp"],
                        event.fields.get("rating", 0))


# KEYS: the user's list. ARGV: entry, most entries kept, expiry (s). 0: already there; 1: pushed.
_RECORD = """
if redis.call('LPOS', KEYS[1], ARGV[1]) then return 0 end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


def record(client: redis.Redis, event: Event) -> bool:
    """Push the event on its user's list, newest first, keeping the newest ``MAX_EVENTS`` and
    expiring ``TTL_SECONDS`` after the last (published.recent); False when the list already
    holds it (a redelivery).

    One script on one key: safe on Redis Cluster, and no reader sees the list between the check,
    the push and the trim.
    """
    key = keys.recent(event.fields["tenant"], event.fields["user_id"])
    pushed = client.register_script(_RECORD)(
        keys=[key], args=[entry(event), recent.MAX_EVENTS, recent.TTL_SECONDS])
    return bool(pushed)
