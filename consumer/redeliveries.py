"""Crash loops end: an event whose deliveries ended ``ML_MAX_DELIVERIES`` times without an ack is
dead-lettered instead of being handled once more.

A message whose handling ends the process (out of memory on a huge export, a native crash in a
library) is never acked, so the broker hands it to the next worker, which ends the same way, for
ever. How the deliveries are counted depends on the transport:

- Quorum queues on RabbitMQ count for us. A redelivered message carries ``x-delivery-count``:
  its returns to the queue, a closed channel or a dead worker included (RabbitMQ 4.3 narrowed it
  to the returns it deems failures, which still include a closed channel, and added
  ``x-acquired-count`` for every time a consumer was given the message). The larger is used.
- Elsewhere (classic queues, kombu's Redis transport, memory://) a counter in Redis per message,
  touched only when the broker marks the delivery as a redelivery: the first delivery of a
  message, that is nearly every delivery, costs no Redis command.

A retry or a wait for the tenant lock republishes the event as a new message, whose count starts
again; the copy carries the count so far in ``x-unacked-deliveries`` (consumer.retry), because a
worker that died holding the tenant lock makes the next one wait for it: without the header,
every crash would be followed by a fresh copy and the loop would never end.

The queues do not declare RabbitMQ's own ``x-delivery-limit``: a queue argument cannot change on
a queue that exists (the declaration fails with PRECONDITION_FAILED), so adding it, or changing
the limit later, would need new queues; and the broker's dead-lettering carries no reason.
"""

from __future__ import annotations

import hashlib
from typing import Any

import redis

from consumer.delivery import Delivery
from consumer.retry import BROKER_COUNT_HEADERS, header_int
from published import keys

DEFAULT_MAX_DELIVERIES = 5
# Far longer than a message stays unacked (kombu's Redis transport redelivers after an hour).
COUNTER_TTL_SECONDS = 7 * 24 * 3600


def redelivered(message: Any) -> bool:
    """Whether the broker says it delivered this message before."""
    if (getattr(message, "delivery_info", None) or {}).get("redelivered"):
        return True  # AMQP, kombu's Redis transport
    raw = getattr(message, "_raw", None)  # kombu's memory transport marks only its raw payload
    return isinstance(raw, dict) and bool(raw.get("redelivered"))


def identity(d: Delivery) -> str:
    """The same for every delivery of one message; a retry's copy (another attempt) differs."""
    body = d.message.body
    if isinstance(body, str):
        body = body.encode("utf-8", "surrogateescape")
    digest = hashlib.sha256(f"{d.routing_key}\0{d.attempt}\0{d.lock_waits}\0".encode())
    digest.update(body or b"")
    return digest.hexdigest()


class DeliveryCounter:
    def __init__(self, client: redis.Redis, limit: int = DEFAULT_MAX_DELIVERIES, *,
                 broker_counts: bool = False) -> None:
        self.client = client
        self.limit = limit
        self.broker_counts = broker_counts  # quorum queues: the broker's headers are the count

    def redeliveries(self, d: Delivery) -> int:
        """Earlier deliveries of this very message (each ended without an ack)."""
        if self.broker_counts:
            return max(header_int(d.message.headers, name) for name in BROKER_COUNT_HEADERS)
        if not redelivered(d.message):
            return 0
        key = keys.deliveries(identity(d))
        pipe = self.client.pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, COUNTER_TTL_SECONDS)
        earlier, _ = pipe.execute()
        return int(earlier)

    def forget(self, d: Delivery) -> None:
        """Drop the message's counter once it is dead-lettered: moved back, it starts afresh."""
        if not self.broker_counts:
            self.client.delete(keys.deliveries(identity(d)))

    def exceeded(self, d: Delivery) -> str | None:
        """Why this delivery must not be handled again, or None. Adds this message's unacked
        deliveries to ``d.unacked``, which a retry or lock-wait copy carries on."""
        d.unacked += self.redeliveries(d)
        if d.unacked < self.limit:
            return None
        return (f"{d.unacked} deliveries ended without an ack (ML_MAX_DELIVERIES={self.limit}): "
                "handling it may end the worker (out of memory, a native crash)")
