"""The worker: a kombu ConsumerMixin whose thread owns the connection and settles every message.

Its loop (``on_iteration``, then ``drain_events`` for at most ``safety_interval`` seconds) never
blocks on slow work: training and tenants.csv downloads run on the ``Runner`` thread, so AMQP
heartbeats go on during an hour-long fit and interaction events keep flowing. Messages are acked
only when their work is done; a worker that dies leaves them unacked, and the broker redelivers.
ConsumerMixin reconnects (with backoff) when the connection drops.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import redis
from kombu import Connection, Producer
from kombu import Consumer as KombuConsumer
from kombu.message import Message
from kombu.mixins import ConsumerMixin

from consumer import events, interactions, jobs
from consumer import metrics as worker_metrics
from consumer.dedup import DoneMarkers
from consumer.delivery import Delivery, Settler
from consumer.retry import RetryPolicy
from consumer.runner import Runner
from consumer.scheduler import Scheduler
from consumer.topology import Topology
from runtime import logsetup

log = logging.getLogger("consumer")


class _StopRequested(Exception):
    """Raised out of a reconnect wait when the worker was told to stop."""


class Worker(ConsumerMixin):
    def __init__(self, connection: Connection, topology: Topology, *, client: redis.Redis,
                 context: jobs.JobContext, policy: RetryPolicy | None = None,
                 schedule_seconds: int | None = None, safety_interval: float = 0.5,
                 stop_grace: float = 8.0, interactions_prefetch: int = 10,
                 reconnect_intervals: tuple[float, float, float] = (1.0, 1.0, 10.0),
                 alive_file: Path | None = None) -> None:
        self.connection = connection
        self.topology = topology
        self.client = client  # short timeouts: used on the connection thread
        self.context = context
        self.markers = DoneMarkers(client)
        self.settler = Settler(topology, policy or RetryPolicy())
        self.runner = Runner()
        self.scheduler = (Scheduler(client, self._publish_scheduled, schedule_seconds)
                          if schedule_seconds else None)
        self._scheduler_started = False
        self._schedule_paused_until = 0.0
        self.safety_interval = safety_interval
        self.stop_grace = stop_grace
        self.interactions_prefetch = interactions_prefetch
        self.reconnect_intervals = reconnect_intervals
        self.alive_file = alive_file
        self._alive_touched = 0.0
        self._conn: Connection | None = None
        self._events: deque[Delivery] = deque()
        self._interactions: deque[Delivery] = deque()
        self.inflight: Delivery | None = None
        self._stop_deadline: float | None = None
        self.ready = False  # consuming (tests wait for it)

    # -- connection life ---------------------------------------------------------------------

    @contextmanager
    def establish_connection(self) -> Iterator[Connection]:
        start, step, top = self.reconnect_intervals
        with self.create_connection() as conn:
            conn.ensure_connection(self.on_connection_error, self.connect_max_retries,
                                   interval_start=start, interval_step=step, interval_max=top,
                                   callback=self._raise_if_stopping)
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

    def _raise_if_stopping(self) -> None:
        if self._stop_deadline is not None:
            raise _StopRequested()

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

    # -- the loop ------------------------------------------------------------------------------

    def on_iteration(self) -> None:
        if self._conn is not None:
            self._conn.heartbeat_check()
        self._collect()
        self.settler.release_due()
        while self._interactions:
            self._handle(self._interactions.popleft())
        while self._events and self._stop_deadline is None:
            head = self._events[0]
            if self._needs_runner(head) and self.runner.busy:
                break
            self._handle(self._events.popleft())
        self._schedule()
        self._touch_alive()
        self._check_stop()

    def _needs_runner(self, d: Delivery) -> bool:
        if d.event is None:
            return False
        if d.event.type == events.TRAIN:
            return True
        return d.event.type in (events.EXPORT_READY, events.RETRAIN) and not (
            d.event.fields.get("tenants") or d.event.fields.get("tenant"))

    def _broker_errors(self) -> tuple[type[BaseException], ...]:
        return self.connection.connection_errors + self.connection.channel_errors

    def _handle(self, d: Delivery) -> None:
        if d.event is None:
            self.settler.dead_letter(d, d.invalid or "invalid message")
            return
        log.info("received %s", d.describe())
        self._guarded(d, lambda: self._dispatch(d))

    def _guarded(self, d: Delivery, work: Callable[[], None]) -> None:
        """Broker trouble reconnects (unacked messages come back), Redis trouble retries, and
        anything else (a bug meeting an odd message) dead-letters rather than crash-looping
        every worker on the same message."""
        try:
            work()
        except self._broker_errors():
            raise
        except (redis.RedisError, OSError) as exc:
            self.settler.retry(d, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            log.exception("%s: internal error", d.describe())
            self.settler.dead_letter(d, f"internal error: {type(exc).__name__}: {exc}")

    def _dispatch(self, d: Delivery) -> None:
        event = d.event
        assert event is not None
        if self.markers.is_done(event.id):
            worker_metrics.event(d, "duplicate")
            self.settler.ack(d, "duplicate of an event already done")
        elif event.type == events.INTERACTION:
            interactions.record(self.client, event)
            self.markers.mark(event.id, "recorded")
            worker_metrics.event(d, "recorded")
            self.settler.ack(d, "interaction recorded")
        elif event.type == events.TRAIN:
            self._start(d, lambda: jobs.run_train(self.context, event))
        elif self._needs_runner(d):
            self._start(d, lambda: jobs.run_tenants(self.context, event))
        else:
            tenants = event.fields.get("tenants") or [event.fields["tenant"]]
            self._fan_out(d, tenants)

    def _start(self, d: Delivery, job: Any) -> None:
        event_id = d.event.id if d.event is not None else "?"

        def logged_job() -> Any:
            # Every line the training logs (stages, publish) names the event it serves.
            token = logsetup.bind(event=event_id)
            try:
                return job()
            finally:
                logsetup.unbind(token)

        if not self.runner.submit(d, logged_job):
            self._events.appendleft(d)  # cannot happen with one loop thread; stay safe
            return
        self.inflight = d
        worker_metrics.TRAINING.set(1)
        log.info("started %s", d.describe())

    def _fan_out(self, d: Delivery, tenants: list[str]) -> None:
        event = d.event
        assert event is not None
        retrain = event.type == events.RETRAIN
        # All built (validated) before the first is sent: a bad tenant id sends none.
        children = [events.make_event(events.TRAIN, event_id=events.child_id(event.id, tenant),
                                      tenant=tenant, parent=event.id,
                                      algorithm=event.fields.get("algorithm"),
                                      force=True if retrain else None) for tenant in tenants]
        for child in children:
            self.settler.publish(child)
        self.markers.mark(event.id, f"fanned out to {len(tenants)}")
        worker_metrics.event(d, "fanned_out")
        self.settler.ack(d, f"published train events for {len(tenants)} tenant(s): "
                            + ", ".join(tenants[:20]) + (" ..." if len(tenants) > 20 else ""))

    def _collect(self) -> None:
        for finished in self.runner.poll():
            d: Delivery = finished.key
            self.inflight = None
            worker_metrics.TRAINING.set(0)
            self._guarded(d, partial(self._settle_job, d, finished.value, finished.error,
                                     finished.seconds))

    def _settle_job(self, d: Delivery, outcome: jobs.Outcome | None,
                    error: BaseException | None, seconds: float) -> None:
        if error is not None:
            reason = f"{type(error).__name__}: {error}"
            if jobs.is_retryable(error):
                self.settler.retry(d, reason)
            else:
                log.error("%s raised after %.1fs", d.describe(), seconds, exc_info=error)
                self.settler.dead_letter(d, reason)
            return
        assert outcome is not None
        if outcome.kind == jobs.OutcomeKind.LOCKED:
            self.settler.wait_for_lock(d, outcome.holder)
        elif outcome.kind == jobs.OutcomeKind.DUPLICATE:
            worker_metrics.event(d, "duplicate")
            self.settler.ack(d, "duplicate of an event done while it waited")
        elif outcome.kind == jobs.OutcomeKind.TENANTS:
            self._fan_out(d, outcome.tenants)
        else:
            status, text = jobs.summarize(outcome.result, seconds)
            worker_metrics.event(d, status)
            worker_metrics.training_finished(outcome.result, seconds)
            if status in jobs.SUCCESS_STATUSES:
                log.info("%s %s", d.describe(), text)
            else:
                # A data problem (malformed export): another run of the same export fails the
                # same way, so no retry; train_summary.log has the row for Totara's admins.
                log.error("%s %s", d.describe(), text)
            self.settler.ack(d, f"status {status}")

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
        if self.alive_file is None or time.monotonic() - self._alive_touched < 5:
            return
        self.alive_file.touch()
        self._alive_touched = time.monotonic()

    def request_stop(self) -> None:
        """First call: finish the message in hand (up to ``stop_grace``); second: stop now."""
        now = time.monotonic()
        if self._stop_deadline is None:
            self._stop_deadline = now + self.stop_grace
            log.info("stopping: no new messages; waiting up to %.1fs for the one in hand",
                     self.stop_grace)
        else:
            self._stop_deadline = now

    def _check_stop(self) -> None:
        if self._stop_deadline is None:
            return
        if self.inflight is not None and time.monotonic() < self._stop_deadline:
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
