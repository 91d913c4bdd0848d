"""The retrain timer of the original, made safe for many workers: one export-ready per period.

Time is cut into periods of ``ML_RECOMMENDATION_RETRAIN_FREQ`` minutes counted from the Unix
epoch (1440 minutes: every day at 00:00 UTC). Every worker looks at the clock on each turn of
its loop; at a new period it tries to claim it in Redis with a compare-and-set on
``ml:scheduler:leader`` (the newest claimed period start, Unix seconds). Only the worker whose
claim moves the value forward publishes, so N workers publish once per period, and a worker
whose clock is slightly behind can never claim a period twice.

At start, as in the original, a worker publishes one export-ready at once when no tenant has
ever been published (``ml:tenants`` empty), guarded by the same claim so that ten workers
starting together train once. Otherwise it only records the current period, so that restarting
workers does not retrain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from consumer import events
from published import keys

log = logging.getLogger(__name__)

SCHEDULED_HEADER = "x-scheduled"  # the period start (Unix seconds) of a scheduled export-ready

_CLAIM = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
return 0
"""
_UNCLAIM = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] == '' then
    return redis.call('DEL', KEYS[1])
  end
  return redis.call('SET', KEYS[1], ARGV[2])
end
return 0
"""

Publish = Callable[[events.Event, dict[str, object]], None]


class Scheduler:
    def __init__(self, client: redis.Redis, publish: Publish, period_seconds: int,
                 clock: Callable[[], float] = time.time) -> None:
        if period_seconds < 1:
            raise ValueError("period_seconds must be at least 1")
        self.client = client
        self.publish = publish
        self.period = int(period_seconds)
        self.clock = clock
        self._claim = client.register_script(_CLAIM)
        self._unclaim = client.register_script(_UNCLAIM)
        self._last: int | None = None  # newest period this worker has seen handled

    def period_start(self, now: float | None = None) -> int:
        now = self.clock() if now is None else now
        return int(now // self.period) * self.period

    def _publish_claimed(self, start: int, reason: str) -> bool:
        previous = self.client.get(keys.SCHEDULE_LEADER)
        if not self._claim(keys=[keys.SCHEDULE_LEADER], args=[start]):
            return False
        event = events.make_event(events.EXPORT_READY)
        try:
            self.publish(event, {SCHEDULED_HEADER: start})
        except BaseException:
            # Hand the period back so that this or another worker publishes it on a later turn.
            was = previous.decode() if isinstance(previous, bytes) else (previous or "")
            if was and int(was) >= start:
                was = ""
            self._unclaim(keys=[keys.SCHEDULE_LEADER], args=[start, was])
            raise
        log.info("scheduler: published export-ready %s (%s, period starting %d)",
                 event.id, reason, start)
        return True

    def start(self) -> bool:
        """At worker start: train at once if nothing was ever published; True if it published."""
        start = self.period_start()
        self._last = start
        if self.client.scard(keys.TENANTS) == 0:
            return self._publish_claimed(start, "no model published yet")
        # Known models: the next export-ready is due at the next period, not now.
        self.client.set(keys.SCHEDULE_LEADER, start, nx=True)
        return False

    def tick(self) -> bool:
        """Called on every loop turn; cheap unless a new period began. True if it published."""
        start = self.period_start()
        if self._last is not None and start <= self._last:
            return False
        published = self._publish_claimed(start, "retrain timer")
        self._last = start
        return published
