"""Totara's request signature (contract §1), used both ways: Totara -> API and service -> Totara."""

from __future__ import annotations

import hashlib
import time

USER_AGENT = "TotaraBot/1.0"


def signature(timestamp: str, key: str) -> str:
    """Lowercase hex SHA-256 of the time string exactly as sent followed by the shared key."""
    return hashlib.sha256((timestamp + key).encode("utf-8")).hexdigest()


def signed_headers(key: str, now: float | None = None) -> dict[str, str]:
    """Headers Totara sends with every request, and that Totara checks on export downloads."""
    stamp = str(int(time.time() if now is None else now))
    return {"X-Totara-Time": stamp, "X-Totara-Ml-Key": signature(stamp, key),
            "User-Agent": USER_AGENT}
