"""Interaction events into the user's bounded ``recent`` list (docs/redis-keys.md).

The API folds these into a user's scores when the user has no published list yet (a user who
joined after the last training), so what the user just did shows up before the next training.
"""

from __future__ import annotations

import redis

from consumer.events import Event
from published import keys, recent


def entry(event: Event) -> str:
    return recent.entry(event.fields["item_id"], event.fields["timestamp"],
                        event.fields.get("rating", 0))


def record(client: redis.Redis, event: Event) -> None:
    """Push the event on its user's list, newest first, keeping the newest ``MAX_EVENTS`` and
    expiring ``TTL_SECONDS`` after the last (published.recent).

    All three keys operations touch one key, so this is safe on Redis Cluster; MULTI keeps a
    reader from seeing the list between the push and the trim.
    """
    key = keys.recent(event.fields["tenant"], event.fields["user_id"])
    pipe = client.pipeline(transaction=True)
    pipe.lpush(key, entry(event))
    pipe.ltrim(key, 0, recent.MAX_EVENTS - 1)
    pipe.expire(key, recent.TTL_SECONDS)
    pipe.execute()
