"""A user's recent-events list, ``keys.recent`` (docs/redis-keys.md): the consumer writes it from
interaction events, the API folds it into the scores of users without a published list.

JSON objects ``{"item_id": "engage_article12", "timestamp": 1700000000, "rating": 1}``, newest
first, at most ``MAX_EVENTS`` of them, expiring ``TTL_SECONDS`` after the user's last event.
"""

from __future__ import annotations

import json

MAX_EVENTS = 100
TTL_SECONDS = 30 * 24 * 3600


def entry(item_id: str, timestamp: int, rating: int) -> str:
    """One event as the list stores it (compact JSON)."""
    return json.dumps({"item_id": item_id, "timestamp": timestamp, "rating": rating},
                      separators=(",", ":"))
