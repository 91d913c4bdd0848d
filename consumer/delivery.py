"""One received message and what the worker knows about it; and how it is settled.

Settling (ack, retry, dead-letter) happens only on the connection thread, the one that owns the
channel. A delivery carries the number of the connection it came on: after a reconnect, the
broker has already redelivered the messages of the old connection, and a late ack on them is
skipped rather than sent on a channel that no longer exists.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from kombu import Producer
from kombu.exceptions import MessageStateError
from kombu.message import Message

from consumer import events
from consumer import metrics as worker_metrics
from consumer.retry import (
    ATTEMPT_HEADER,
    BROKER_COUNT_HEADERS,
    LOCK_WAITS_HEADER,
    UNACKED_HEADER,
    HeldRetries,
    RetryPolicy,
    header_int,
)
from consumer.sender import publish_event
from consumer.topology import DEAD_ROUTING_KEY, Topology
from runtime.errors import InvalidEvent

log = logging.getLogger("consumer")

DEAD_REASON_HEADER = "x-dead-reason"


@dataclass
class Delivery:
    message: Message
    generation: int
    event: events.Event | None = None
    invalid: str | None = None  # why the message can never be processed
    attempt: int = 0  # failed attempts before this delivery
    lock_waits: int = 0
    unacked: int = 0  # deliveries of the event that ended without an ack (see UNACKED_HEADER)
    received: float = field(default_factory=time.monotonic)

    @classmethod
    def receive(cls, message: Message, generation: int, decode_error: str | None = None
                ) -> Delivery:
        """What a message says, or why it can never be processed. Never raises: an exception
        here would end the consumer, and the broker would hand the same message to the next
        worker, which would end the same way."""
        # header_int reads any headers value, a garbled one as 0.
        delivery = cls(message, generation,
                       attempt=header_int(message.headers, ATTEMPT_HEADER),
                       lock_waits=header_int(message.headers, LOCK_WAITS_HEADER),
                       unacked=header_int(message.headers, UNACKED_HEADER))
        if decode_error is not None:
            delivery.invalid = decode_error
            return delivery
        try:
            delivery.event = events.decode(message.body, message.content_type)
        except InvalidEvent as exc:
            delivery.invalid = str(exc)
        except Exception as exc:  # a shape the checks above do not foresee: refuse it
            log.exception("a message that cannot be read")
            delivery.invalid = f"the message cannot be read: {type(exc).__name__}"
        return delivery

    @property
    def routing_key(self) -> str:
        return str((self.message.delivery_info or {}).get("routing_key", ""))

    def describe(self) -> str:
        if self.event is None:
            return f"message on {self.routing_key!r}"
        tenant = self.event.tenant
        text = f"{self.event.type} {self.event.id}"
        if tenant is not None:
            text += f" tenant={tenant}"
        if self.attempt:
            text += f" attempt={self.attempt + 1}"
        return text


class Settler:
    """Ack, delayed retry and dead-letter of deliveries, on the current connection."""

    def __init__(self, topology: Topology, policy: RetryPolicy, clock: Any = time.monotonic
                 ) -> None:
        self.topology = topology
        self.policy = policy
        self.clock = clock
        self.producer: Producer | None = None
        self.generation = 0
        self.held = HeldRetries()
        self.counts: dict[str, int] = {}
        self.worker = socket.gethostname()

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def ack(self, d: Delivery, outcome: str) -> None:
        if d.generation != self.generation:
            log.info("%s: %s; not acked (its connection is gone and the broker redelivers it; "
                     "the copy will be a duplicate)", d.describe(), outcome)
            self._count("orphaned")
            return
        try:
            d.message.ack()
        except MessageStateError:
            log.warning("%s was already settled", d.describe())
            return
        self._count("acked")
        log.info("%s: %s; acked after %.1fs", d.describe(), outcome,
                 time.monotonic() - d.received)

    def publish(self, event: events.Event, headers: dict[str, Any] | None = None) -> None:
        if self.producer is None:
            raise ConnectionError("no broker connection")
        publish_event(self.producer, self.topology, event, headers)

    def dead_letter(self, d: Delivery, reason: str) -> None:
        """Keep the message, untouched, in the dead-letter queue with the reason, then ack."""
        reason = " ".join(reason.split())[:500]
        if d.generation != self.generation or self.producer is None:
            log.error("%s: %s; left to the broker to redeliver (its connection is gone)",
                      d.describe(), reason)
            return
        log.error("%s dead-lettered: %s", d.describe(), reason)
        message = d.message
        headers = dict(message.headers or {})
        for name in BROKER_COUNT_HEADERS:  # they describe the work queue's copy
            headers.pop(name, None)
        # A message moved back from the dead-letter queue gets its ML_MAX_DELIVERIES afresh.
        headers.update({DEAD_REASON_HEADER: reason, "x-original-routing-key": d.routing_key,
                        UNACKED_HEADER: 0,
                        ATTEMPT_HEADER: d.attempt, "x-dead-at": int(time.time()),
                        "x-dead-by": self.worker})
        body = message.body if message.body is not None else b""
        if isinstance(body, str):
            # py-amqp gives a bodyless message '' (str); kombu would encode a str with the
            # message's content-encoding, which may be no codec at all ("binary").
            body = body.encode("utf-8", "surrogateescape")
        self.producer.publish(body, exchange=self.topology.exchange,
                              routing_key=DEAD_ROUTING_KEY, headers=headers, delivery_mode=2,
                              content_type=message.content_type or "application/octet-stream",
                              content_encoding=message.content_encoding or "binary")
        self._count("dead")
        worker_metrics.dead_lettered(d)
        self.ack(d, "moved to the dead-letter queue")

    def retry(self, d: Delivery, reason: str) -> None:
        """Run the event again after a backoff, or dead-letter it when attempts are exhausted."""
        failed = d.attempt + 1
        if self.policy.exhausted(failed):
            self.dead_letter(d, f"gave up after {failed} attempts: {reason}")
            return
        delay = self.policy.delay(failed)
        log.warning("%s failed (%s); retry %d of %d in %.1fs", d.describe(), reason, failed + 1,
                    self.policy.max_attempts, delay)
        self._count("retried")
        worker_metrics.event(d, "retried")
        self.held.push(self.clock() + delay,
                       (d, {ATTEMPT_HEADER: failed, LOCK_WAITS_HEADER: d.lock_waits,
                            UNACKED_HEADER: d.unacked}))

    def wait_for_lock(self, d: Delivery, holder: str | None) -> None:
        delay = self.policy.lock_delay(d.lock_waits)
        log.info("%s: tenant is being trained by %s; requeued in %.1fs", d.describe(),
                 holder or "another worker", delay)
        self._count("lock_waits")
        worker_metrics.lock_wait(d)
        self.held.push(self.clock() + delay,
                       (d, {ATTEMPT_HEADER: d.attempt, LOCK_WAITS_HEADER: d.lock_waits + 1,
                            UNACKED_HEADER: d.unacked}))

    def release_due(self, everything: bool = False) -> None:
        """Publish the retries whose time has come (all of them when stopping), then ack."""
        due = self.held.pop_all() if everything else self.held.pop_due(self.clock())
        for d, headers in due:
            if d.generation != self.generation:
                continue  # the broker redelivered the original already
            assert d.event is not None
            self.publish(d.event, headers)
            self.ack(d, "republished for a later attempt")

    def forget_old(self) -> int:
        """After a reconnect: drop held retries of the old connection (already redelivered)."""
        return len(self.held.remove_if(lambda item: item[0].generation != self.generation))

