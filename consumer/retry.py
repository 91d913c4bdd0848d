"""Bounded retries with exponential backoff, and the messages waiting for their retry.

A retry is a new copy of the event (same id and body) published when its delay is over, with
the attempt number in a header; the delivery being retried is acked only after that publish. The
waiting happens in the worker, not in the broker, because kombu's Redis transport has no message
TTL to build delay queues from. The cost: while a worker holds a message for its retry, its
prefetch slot on that queue is taken. The gain: the same code on RabbitMQ and on Redis, and a
worker killed while holding a message loses nothing (the unacked original is redelivered).
"""

from __future__ import annotations

import heapq
import itertools
import random
from dataclasses import dataclass, field
from typing import Any

# Header of a republished event: how many attempts have failed before this delivery.
ATTEMPT_HEADER = "x-attempt"
# Header: how many times the event found its tenant locked by another worker. Kept apart from the
# attempts because waiting for a long training is not a failure and must not exhaust them.
LOCK_WAITS_HEADER = "x-lock-waits"
# Header: deliveries of the event (earlier copies included) that ended without an ack, the worker
# gone mid-way (consumer.redeliveries). Carried over to the copies so that a crash loop whose
# every crash is followed by a lock wait or a retry still ends.
UNACKED_HEADER = "x-unacked-deliveries"
# Headers in which RabbitMQ's quorum queues number a message's earlier deliveries.
BROKER_COUNT_HEADERS = ("x-delivery-count", "x-acquired-count")


def header_int(headers: Any, name: str) -> int:
    """A counter header of a message's headers (whatever they hold); a missing or garbled one
    counts as 0 rather than poisoning the event."""
    try:
        return max(0, int((headers or {}).get(name, 0)))
    except (TypeError, ValueError, OverflowError, AttributeError):  # inf, "x", not a mapping
        return 0


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5  # runs in total, the first one included; then the dead-letter queue
    base_delay: float = 10.0  # seconds before the 2nd run; doubled for each further one
    max_delay: float = 600.0
    lock_wait_delay: float = 15.0  # first wait when the tenant is being trained elsewhere
    lock_wait_max: float = 120.0
    jitter: float = 0.2  # +-20 %, so workers that failed together do not retry together

    def _spread(self, seconds: float) -> float:
        if self.jitter <= 0:
            return seconds
        return seconds * random.uniform(1 - self.jitter, 1 + self.jitter)

    def exhausted(self, failed_attempts: int) -> bool:
        """True when ``failed_attempts`` runs have failed and no further run is allowed."""
        return failed_attempts >= self.max_attempts

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait after the ``failed_attempts``-th failure (1 for the first)."""
        exponent = max(0, failed_attempts - 1)
        return self._spread(min(self.max_delay, self.base_delay * 2**min(exponent, 30)))

    def lock_delay(self, waits: int) -> float:
        return self._spread(min(self.lock_wait_max, self.lock_wait_delay * 2**min(waits, 30)))


@dataclass(order=True)
class _Held:
    due: float
    seq: int
    item: Any = field(compare=False)


class HeldRetries:
    """Items waiting for their due time, earliest first (used by the connection thread only)."""

    def __init__(self) -> None:
        self._heap: list[_Held] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, due: float, item: Any) -> None:
        heapq.heappush(self._heap, _Held(due, next(self._seq), item))

    def pop_due(self, now: float) -> list[Any]:
        out = []
        while self._heap and self._heap[0].due <= now:
            out.append(heapq.heappop(self._heap).item)
        return out

    def pop_all(self) -> list[Any]:
        out = [held.item for held in sorted(self._heap)]
        self._heap.clear()
        return out

    def remove_if(self, predicate: Any) -> list[Any]:
        kept = [h for h in self._heap if not predicate(h.item)]
        dropped = [h.item for h in self._heap if predicate(h.item)]
        self._heap = kept
        heapq.heapify(self._heap)
        return dropped
