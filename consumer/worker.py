"""The worker: a kombu ConsumerMixin whose thread owns the connection and settles every message.

Its loop (``on_iteration``, then ``drain_events`` for at most ``safety_interval`` seconds) never
blocks on slow work: training and tenants.csv downloads run on the ``Runner`` thread, so AMQP
heartbeats go on during an hour-long fit and interaction events keep flowing. Messages are acked
only when their work is done; a worker that dies leaves them unacked, and the broker redelivers.
ConsumerMixin reconnects (with backoff) when the connection drops. What each message means and
how it is settled is consumer.handler's.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from kombu import Connection, Producer
from kombu import Consumer as KombuConsumer
from kombu.message import Message
from kombu.mixins import ConsumerMixin

from consumer import events, jobs
from consumer.delivery import Delivery, Settler
from consumer.handler import EventHandler
from consumer.redeliveries import DEFAULT_MAX_DELIVERIES, DeliveryCounter
from consumer.retry import RetryPolicy
from consumer.runner import Runner
from consumer.scheduler import Scheduler
from consumer.topology import Topology
from runtime.schedule import Schedule

log = logging.getLogger("consumer")


class _StopRequested(Exception):
    """Raised out of a reconnect wait when the worker was told to stop."""


class Worker(ConsumerMixin):
    def __init__(self, connection: Connection, topology: Topology, *, client: redis.Redis,
                 context: jobs.JobContext, policy: RetryPolicy | None = None,
                 schedule_seconds: int | Schedule | None = None, safety_interval: float = 0.5,
                 stop_grace: float = 8.0, interactions_prefetch: int = 10,
                 reconnect_intervals: tuple[float, float, float] = (1.0, 1.0, 10.0),
                 alive_file: Path | None = None,
                 max_deliveries: int = DEFAULT_MAX_DELIVERIES,
                 checkpoint_wait: float = 0.0) -> None:
        self.connection = connection
        self.topology = topology
        self.client = client  # short timeouts: used on the connection thread
        self.context = context
        self.settler = Settler(topology, policy or RetryPolicy())
        self.runner = Runner()
        counter = DeliveryCounter(client, max_deliveries,
                                  broker_counts=topology.counts_deliveries)
        self.handler = EventHandler(client, context, self.settler, self.runner,
                                    self._broker_errors, self._events_first, counter)
        self.scheduler = (Scheduler(client, self._publish_scheduled, schedule_seconds)
                          if schedule_seconds else None)
        self._scheduler_started = False
        self._schedule_paused_until = 0.0
        self.safety_interval = safety_interval
        self.stop_grace = stop_grace
        # Past the grace, how long the fit may take to reach an epoch boundary and write its
        # checkpoint (0: hand the event back at once, as for a trainer that cannot checkpoint).
        self.checkpoint_wait = checkpoint_wait
        self._stop_now = False
        self.interactions_prefetch = interactions_prefetch
        self.reconnect_intervals = reconnect_intervals
        self.alive_file = alive_file
        self.alive_every = 5.0  # seconds between touches of alive_file
        self._alive_touched = 0.0
        self._conn: Connection | None = None
        self._events: deque[Delivery] = deque()
        self._interactions: deque[Delivery] = deque()
        self._stop_deadline: float | None = None
        self.ready = False  # consuming (tests wait for it)

    @property
    def inflight(self) -> Delivery | None:
        """The message whose job is running on the training thread."""
        return self.handler.inflight

    # -- connection life ---------------------------------------------------------------------

    @contextmanager
    def establish_connection(self) -> Iterator[Connection]:
        start, step, top = self.reconnect_intervals
        with self.create_connection() as conn:
            conn.ensure_connection(self.on_connection_error, self.connect_max_retries,
                                   interval_start=start, interval_step=step, interval_max=top,
                                   callback=self._while_reconnecting)
            self._conn = conn
            self.settler.generation += 1
            dropped = self.settler.forget_old() + self._forget_pending()
            if dropped:
                log.info("reconnected; %d message(s) of the old connection are redelivered "
                         "by the broker", dropped)
            try:
                yield conn
            finally:
                # Also on a dropped connection, where ConsumerMixin skips on_consume_end.
                self.ready = False
                self.settler.producer = None

    def _while_reconnecting(self) -> None:
        """Called by kombu on every reconnect attempt and every second between attempts."""
        if self._stop_deadline is not None:
            raise _StopRequested()
        # A broker outage is not a broken worker: restarting it (liveness probe) would not bring
        # the broker back, only delay the reconnect and throw away a training in progress.
        self._touch_alive()

    def _forget_pending(self) -> int:
        old = [d for d in (*self._events, *self._interactions)
               if d.generation != self.settler.generation]
        self._events = deque(d for d in self._events if d.generation == self.settler.generation)
        self._interactions = deque(d for d in self._interactions
                                   if d.generation == self.settler.generation)
        return len(old)

    def on_connection_error(self, exc: BaseException, interval: float) -> None:
        log.warning("broker unreachable (%s); trying again in %.0fs", exc, interval)

    def get_consumers(self, Consumer: Any, channel: Any) -> list[KombuConsumer]:  # noqa: N803
        assert self._conn is not None
        self.topology.declare(channel)
        # Publishing gets its own channel: a confirm wait on the consuming channel would
        # interleave with deliveries.
        self.settler.producer = Producer(self._conn.channel())
        events_consumer = Consumer(queues=[self.topology.events_queue], accept=["json"],
                                   on_message=self._on_event, prefetch_count=1)
        # A second channel: prefetch is per channel on kombu's virtual transports, and the
        # training's unacked message must not block interactions.
        interaction_consumer = KombuConsumer(self._conn.channel(),
                                             queues=[self.topology.interactions_queue],
                                             accept=["json"], on_message=self._on_interaction,
                                             prefetch_count=self.interactions_prefetch,
                                             on_decode_error=self.on_decode_error)
        return [events_consumer, interaction_consumer]

    def on_consume_ready(self, connection: Connection, channel: Any, consumers: Any,
                         **kwargs: Any) -> None:
        self.ready = True
        log.info("consuming %s and %s on %s", self.topology.events_queue.name,
                 self.topology.interactions_queue.name, connection.as_uri())

    # -- receiving (connection thread, possibly nested in a publish confirm wait) -------------

    def _on_event(self, message: Message) -> None:
        self._events.append(Delivery.receive(message, self.settler.generation))

    def _on_interaction(self, message: Message) -> None:
        self._interactions.append(Delivery.receive(message, self.settler.generation))

    def on_decode_error(self, message: Message, exc: BaseException) -> None:
        reason = f"cannot decode the message: {exc}"
        self._interactions.append(Delivery.receive(message, self.settler.generation, reason))

    def _events_first(self, d: Delivery) -> None:
        self._events.appendleft(d)

    # -- the loop ------------------------------------------------------------------------------

    def on_iteration(self) -> None:
        if self._conn is not None:
            self._conn.heartbeat_check()
        self.handler.collect()
        self.settler.release_due()
        while self._interactions:
            self.handler.handle(self._interactions.popleft())
        while self._events and self._stop_deadline is None:
            head = self._events[0]
            if self.handler.needs_runner(head) and self.runner.busy:
                break
            self.handler.handle(self._events.popleft())
        self._schedule()
        self._touch_alive()
        self._check_stop()

    def _broker_errors(self) -> tuple[type[BaseException], ...]:
        return self.connection.connection_errors + self.connection.channel_errors

    # -- schedule, liveness, stop ----------------------------------------------------------------

    def _publish_scheduled(self, event: events.Event, headers: dict[str, object]) -> None:
        self.settler.publish(event, headers)

    def _schedule(self) -> None:
        if (self.scheduler is None or self._stop_deadline is not None
                or time.monotonic() < self._schedule_paused_until):
            return
        try:
            if not self._scheduler_started:
                self.scheduler.start()
                self._scheduler_started = True
            else:
                self.scheduler.tick()
        except (redis.RedisError, OSError) as exc:
            if isinstance(exc, self._broker_errors()):
                raise
            log.warning("scheduler: Redis unavailable (%s); trying again in 10s", exc)
            self._schedule_paused_until = time.monotonic() + 10

    def _touch_alive(self) -> None:
        if self.alive_file is None or time.monotonic() - self._alive_touched < self.alive_every:
            return
        self.alive_file.touch()
        self._alive_touched = time.monotonic()

    def request_stop(self) -> None:
        """First call: finish the message in hand (up to ``stop_grace``, then up to
        ``checkpoint_wait`` more for the fit to checkpoint); second: stop now."""
        now = time.monotonic()
        if self._stop_deadline is None:
            self._stop_deadline = now + self.stop_grace
            log.info("stopping: no new messages; waiting up to %.1fs (ML_WORKER_STOP_GRACE) for "
                     "the one in hand", self.stop_grace)
        else:
            self._stop_deadline, self._stop_now = now, True

    def _check_stop(self) -> None:
        if self._stop_deadline is None:
            return
        now = time.monotonic()
        if self.inflight is not None and now < self._stop_deadline:
            return
        interrupt = self.context.service.interrupt
        if (self.inflight is not None and self.checkpoint_wait > 0 and not self._stop_now
                and not interrupt.is_set()):
            interrupt.set()
            self._stop_deadline = now + self.checkpoint_wait
            log.info("stop grace over: the fit stops at its next epoch boundary and writes a "
                     "checkpoint (waiting up to %.0fs)", self.checkpoint_wait)
            return
        if self.inflight is not None:
            log.warning("%s not finished: handed back unacked, the broker redelivers it",
                        self.inflight.describe())
        self.settler.release_due(everything=True)
        self.should_stop = True

    def serve(self) -> None:
        """Consume until stopped (reconnecting on connection loss)."""
        try:
            self.run(safety_interval=self.safety_interval)
        except _StopRequested:
            pass
        finally:
            self.runner.close()
            released = self.context.locks.release_all()
            if released:
                log.info("released %d tenant lock(s) of the abandoned training", released)
