"""When the retrain timer fires: a period, the time of day it starts at, and a spread of tenants.

Periods last ``ML_RECOMMENDATION_RETRAIN_FREQ`` minutes, as in the original, but start at
``ML_RETRAIN_AT`` (UTC) instead of at the Unix epoch's midnight: with a period that divides a
day, at that time every day. ``ML_RETRAIN_SPREAD`` spreads the tenants' runs over a window after
each period start, so that a hundred tenants do not all train (and download their exports from
Totara) at the same minute. A tenant's place in the window comes from a hash of its id: the same
on every worker and every day, whatever the tenants around it, and even over the window.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from runtime.errors import ConfigError

DAY = 86400
_TIME_OF_DAY = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_DURATION = re.compile(r"(\d{1,6})\s*([smh]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_time_of_day(name: str, raw: str) -> int:
    """``HH:MM`` (UTC) as seconds after midnight; "" is midnight."""
    text = raw.strip()
    if text == "":
        return 0
    match = _TIME_OF_DAY.fullmatch(text)
    if match is None:
        raise ConfigError(f"{name}={raw!r}: expected a time of day HH:MM in UTC, from 00:00 to "
                          "23:59")
    return int(match.group(1)) * 3600 + int(match.group(2)) * 60


def parse_spread(name: str, raw: str, period: int) -> int:
    """A duration such as ``90m`` or ``3h`` (plain digits: seconds), shorter than ``period``."""
    text = raw.strip().lower()
    match = _DURATION.fullmatch(text) if text else None
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)] if match else None
    if text and (seconds is None or seconds >= period):
        raise ConfigError(f"{name}={raw!r}: expected a duration such as 45m or 3h (s, m or h), "
                          f"shorter than the retrain period of {period // 60} minutes "
                          "(ML_RECOMMENDATION_RETRAIN_FREQ)")
    return seconds or 0


@dataclass(frozen=True)
class Schedule:
    period: int  # seconds
    at: int = 0  # seconds after 00:00 UTC at which periods start
    spread: int = 0  # seconds: each tenant's run lies in [period start, period start + spread)

    def __post_init__(self) -> None:
        if self.period < 1 or not 0 <= self.spread < max(self.period, 1):
            raise ValueError(f"invalid schedule {self}: need period >= 1, 0 <= spread < period")

    def period_start(self, now: float) -> int:
        """Start (Unix seconds) of the period that ``now`` lies in."""
        return int((now - self.at) // self.period) * self.period + self.at

    def offset(self, tenant: str) -> int:
        """Seconds after a period start at which ``tenant`` retrains, in [0, spread)."""
        if not self.spread:
            return 0
        digest = hashlib.sha256(tenant.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.spread

    def due(self, tenant: str, now: float) -> list[int]:
        """The tenant's run times of the previous and the current period, oldest first."""
        start, offset = self.period_start(now), self.offset(tenant)
        return [start - self.period + offset, start + offset]

    def next_run(self, tenant: str, now: float) -> int:
        """The tenant's first run time after ``now``."""
        run = self.period_start(now) + self.offset(tenant)
        return run if run > now else run + self.period
