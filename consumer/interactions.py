"""Interaction events into the user's bounded ``recent`` list (docs/redis-keys.md).

The API folds these into a user's scores when the user has no published list yet (a user who
joined after the last training), so what the user just did shows up before the next training.
"""

from __future__ import annotations

import json

import redis

from consumer.events import Event
from published import keys

RECENT_MAX = 100
RECENT_TTL_SECONDS = 30 * 24 * 3600


def entry(event: Event) -> str:
    return json.dumps({"item_id": event.fields["item_id"],
                       "timestamp": event.fields["timestamp"],
                       "rating": event.fields.get("rating", 0)}, separators=(",", ":"))


def record(client: redis.Redis, event: Event) -> None:
    """Push the event on its user's list, newest first, keep 100, expire 30 days after the last.

    All three keys operations touch one key, so this is safe on Redis Cluster; MULTI keeps a
    reader from seeing the list between the push and the trim.
    """
    key = keys.recent(event.fields["tenant"], event.fields["user_id"])
    pipe = client.pipeline(transaction=True)
    pipe.lpush(key, entry(event))
    pipe.ltrim(key, 0, RECENT_MAX - 1)
    pipe.expire(key, RECENT_TTL_SECONDS)
    pipe.execute()
