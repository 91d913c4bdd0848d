"""The retrain timer of the original, made safe for many workers: one export-ready per period.

Time is cut into periods of ``ML_RECOMMENDATION_RETRAIN_FREQ`` minutes starting at
``ML_RETRAIN_AT`` (UTC; 00:00 by default, as the original's periods counted from the epoch), see
runtime.schedule. Every worker looks at the clock on each turn of its loop; at a new period it
tries to claim it in Redis with a compare-and-set on ``ml:scheduler:leader`` (the newest claimed
period start, Unix seconds). Only the worker whose claim moves the value forward publishes, so N
workers publish once per period, and a worker whose clock is slightly behind can never claim a
period twice.

With ``ML_RETRAIN_SPREAD``, the period's start publishes nothing: each published tenant
(``ml:tenants``) gets its own ``train`` event at its own time in the window, claimed the same way
on ``ml:{<tenant>}:scheduled`` (its newest claimed run time). Tenants Totara adds later are
trained by the export-ready Totara's cron publishes after its export (README), or at the next
``python -m consumer publish export-ready``.

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
from runtime.schedule import Schedule

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
REFRESH_SECONDS = 60.0  # how often a spreading scheduler reads the tenant list again


class Scheduler:
    def __init__(self, client: redis.Redis, publish: Publish, schedule: Schedule | int,
                 clock: Callable[[], float] = time.time) -> None:
        if isinstance(schedule, int):
            if schedule < 1:
                raise ValueError("period_seconds must be at least 1")
            schedule = Schedule(schedule)
        self.client = client
        self.publish = publish
        self.schedule = schedule
        self.period = schedule.period
        self.clock = clock
        self._claim = client.register_script(_CLAIM)
        self._unclaim = client.register_script(_UNCLAIM)
        self._last: int | None = None  # newest period this worker has seen handled
        self._cursor = 0.0  # spread: tenants due up to this time were looked at
        self._tenants: list[str] = []
        self._tenants_read = -REFRESH_SECONDS

    def period_start(self, now: float | None = None) -> int:
        return self.schedule.period_start(self.clock() if now is None else now)

    def _publish_claimed(self, key: str, when: int, event: events.Event, reason: str) -> bool:
        previous = self.client.get(key)
        if not self._claim(keys=[key], args=[when]):
            return False
        try:
            self.publish(event, {SCHEDULED_HEADER: when})
        except BaseException:
            # Hand the claim back so that this or another worker publishes it on a later turn.
            was = previous.decode() if isinstance(previous, bytes) else (previous or "")
            if was and int(was) >= when:
                was = ""
            self._unclaim(keys=[key], args=[when, was])
            raise
        log.info("scheduler: published %s %s (%s, at %d)", event.type, event.id, reason, when)
        return True

    def _export_ready(self, start: int, reason: str) -> bool:
        return self._publish_claimed(keys.SCHEDULE_LEADER, start,
                                     events.make_event(events.EXPORT_READY), reason)

    def start(self) -> bool:
        """At worker start: train at once if nothing was ever published; True if it published."""
        now = self.clock()
        start = self.period_start(now)
        self._last = start
        self._cursor = now  # runs due before this worker started were other workers' to publish
        if self.client.scard(keys.TENANTS) == 0:
            return self._export_ready(start, "no model published yet")
        # Known models: the next export-ready is due at the next period, not now.
        self.client.set(keys.SCHEDULE_LEADER, start, nx=True)
        return False

    def tick(self) -> bool:
        """Called on every loop turn; cheap unless a run is due. True if it published."""
        now = self.clock()
        start = self.period_start(now)
        published = False
        if self._last is None or start > self._last:
            if self.schedule.spread:
                # The period's claim still marks it handled (status page, next-retrain metric).
                self._claim(keys=[keys.SCHEDULE_LEADER], args=[start])
            else:
                published = self._export_ready(start, "retrain timer")
            self._last = start
        if self.schedule.spread:
            published = self._tick_tenants(now) or published
        return published

    def _tick_tenants(self, now: float) -> bool:
        if time.monotonic() - self._tenants_read >= REFRESH_SECONDS:
            self._tenants = sorted(t.decode() if isinstance(t, bytes) else str(t)
                                   for t in self.client.smembers(keys.TENANTS))
            self._tenants_read = time.monotonic()
        published = False
        for tenant in self._tenants:
            for due in self.schedule.due(tenant, now):
                if self._cursor < due <= now:
                    event = events.make_event(events.TRAIN, tenant=tenant)
                    if self._publish_claimed(keys.scheduled(tenant), due, event,
                                             f"tenant {tenant}'s retrain time"):
                        published = True
        self._cursor = now
        return published
