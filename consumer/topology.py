"""Exchange, queues and routing keys of the service (docs/events.md).

One durable direct exchange ``totara_ml`` routes by event type:

- ``totara_ml.events``: ``export-ready``, ``retrain``, ``train``. Prefetch 1, so a worker that is
  training holds one message and the next tenant goes to another worker.
- ``totara_ml.interactions``: ``interaction``. Its own queue and channel, so interaction events
  are recorded while the same worker trains (they would otherwise wait behind a long fit).
- ``totara_ml.dead``: routing key ``dead``; poison messages and exhausted retries, published by
  the worker itself with the reason in the ``x-dead-reason`` header. That works on every
  transport (kombu's Redis transport has no native dead-lettering).

On AMQP the queues also name the exchange as their ``x-dead-letter-exchange``, and the exchange
has an alternate exchange ``totara_ml.unrouted`` (fanout, bound to the dead queue), so messages
with an unknown routing key are kept instead of silently dropped. The prefix is ``totara_ml``
unless ``ML_BROKER_PREFIX`` (``Settings.broker_prefix``) says otherwise; tests use a unique one.
"""

from __future__ import annotations

from dataclasses import dataclass

from kombu import Exchange, Queue, binding

from consumer import events

DEFAULT_PREFIX = "totara_ml"
DEAD_ROUTING_KEY = "dead"
EVENT_KEYS = (events.EXPORT_READY, events.RETRAIN, events.TRAIN)
INTERACTION_KEYS = (events.INTERACTION,)


def is_amqp(url: str) -> bool:
    return url.split("://", 1)[0] in ("amqp", "amqps", "pyamqp")


@dataclass(frozen=True)
class Topology:
    prefix: str = DEFAULT_PREFIX
    amqp: bool = True  # broker-side extras (DLX, alternate exchange) only where they exist
    # "quorum": replicated queues for a RabbitMQ cluster. The type is fixed when a queue is first
    # declared; changing it means new queues (another ML_BROKER_PREFIX) or deleting the old ones.
    queue_type: str = "classic"

    @property
    def exchange(self) -> Exchange:
        arguments = {"alternate-exchange": f"{self.prefix}.unrouted"} if self.amqp else None
        return Exchange(self.prefix, type="direct", durable=True, delivery_mode="persistent",
                        arguments=arguments)

    @property
    def unrouted_exchange(self) -> Exchange:
        return Exchange(f"{self.prefix}.unrouted", type="fanout", durable=True)

    def _queue(self, suffix: str, keys: tuple[str, ...]) -> Queue:
        arguments = None
        if self.amqp:
            arguments = {"x-dead-letter-exchange": self.prefix,
                         "x-dead-letter-routing-key": DEAD_ROUTING_KEY}
            arguments.update(self._type_argument)
        # No exchange= here: kombu would add a binding with an empty routing key.
        return Queue(f"{self.prefix}.{suffix}",
                     bindings=[binding(self.exchange, routing_key=k) for k in keys],
                     durable=True, auto_delete=False, queue_arguments=arguments)

    @property
    def _type_argument(self) -> dict[str, str]:
        # Only quorum is named: a classic queue declared without the argument stays compatible.
        return {"x-queue-type": "quorum"} if self.amqp and self.queue_type == "quorum" else {}

    @property
    def counts_deliveries(self) -> bool:
        """Whether the broker numbers redeliveries in the message's headers (quorum queues)."""
        return self.amqp and self.queue_type == "quorum"

    @property
    def events_queue(self) -> Queue:
        return self._queue("events", EVENT_KEYS)

    @property
    def interactions_queue(self) -> Queue:
        return self._queue("interactions", INTERACTION_KEYS)

    @property
    def dead_queue(self) -> Queue:
        bindings = [binding(self.exchange, routing_key=DEAD_ROUTING_KEY)]
        if self.amqp:
            bindings.append(binding(self.unrouted_exchange, routing_key=""))
        return Queue(f"{self.prefix}.dead", bindings=bindings, durable=True, auto_delete=False,
                     queue_arguments=self._type_argument or None)

    @property
    def queues(self) -> list[Queue]:
        return [self.events_queue, self.interactions_queue, self.dead_queue]

    def declare(self, channel: object) -> None:
        """Declare everything, idempotently; publishers and workers both call it."""
        if self.amqp:
            self.unrouted_exchange.bind(channel).declare()
        self.exchange.bind(channel).declare()
        for queue in self.queues:
            queue.bind(channel).declare()

    def delete(self, channel: object) -> None:
        """Remove every queue and exchange of this prefix (tests and uninstall)."""
        for queue in self.queues:
            queue.bind(channel).delete()
        self.exchange.bind(channel).delete()
        if self.amqp:
            self.unrouted_exchange.bind(channel).delete()
