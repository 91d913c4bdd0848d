"""Markers of finished events, so a duplicate delivery of the same event does nothing.

An event is marked only when its work is done (never on receipt): a retry of the same event
keeps its id and must still run, and a worker that dies mid-way leaves no marker behind. The
tenant lock keeps two copies of one train event from running at the same time; the marker makes
the later copy a no-op.
"""

from __future__ import annotations

import redis

from published import keys

MARKER_TTL_SECONDS = 7 * 24 * 3600  # far longer than any redelivery or retry chain


class DoneMarkers:
    def __init__(self, client: redis.Redis, ttl: int = MARKER_TTL_SECONDS) -> None:
        self.client = client
        self.ttl = ttl

    def is_done(self, event_id: str) -> bool:
        return bool(self.client.exists(keys.done(event_id)))

    def mark(self, event_id: str, outcome: str) -> bool:
        """Record the event as done; False when another worker had already recorded it."""
        return bool(self.client.set(keys.done(event_id), outcome, nx=True, ex=self.ttl))
