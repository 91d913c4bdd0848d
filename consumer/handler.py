"""What the worker does with each message, and how it settles it; all on the connection thread.

An interaction is recorded and acked at once. A train event, and an export-ready or retrain
event without tenants (tenants.csv must be downloaded first), runs on the ``Runner`` thread; it is
settled when its result comes back (``collect``). An event naming its tenants fans out one train
event per tenant. Whatever happens, the message is acked, retried or dead-lettered exactly once
(consumer.delivery.Settler).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from typing import Any

import redis

from consumer import events, interactions, jobs
from consumer import metrics as worker_metrics
from consumer.dedup import DoneMarkers
from consumer.delivery import Delivery, Settler
from consumer.redeliveries import DeliveryCounter
from consumer.runner import Runner
from runtime import logsetup
from runtime.errors import FitInterrupted, describe

log = logging.getLogger("consumer")


class EventHandler:
    def __init__(self, client: redis.Redis, context: jobs.JobContext, settler: Settler,
                 runner: Runner, broker_errors: Callable[[], tuple[type[BaseException], ...]],
                 requeue: Callable[[Delivery], None],
                 counter: DeliveryCounter | None = None) -> None:
        self.client = client  # short timeouts: used on the connection thread
        self.context = context
        self.markers = DoneMarkers(client)
        self.counter = counter or DeliveryCounter(client)
        self.settler = settler
        self.runner = runner
        self._broker_errors = broker_errors  # these propagate: the worker reconnects
        self._requeue = requeue  # puts an event back at the head of the worker's queue
        self.inflight: Delivery | None = None  # the message whose job the runner has

    @staticmethod
    def needs_runner(d: Delivery) -> bool:
        if d.event is None:
            return False
        if d.event.type == events.TRAIN:
            return True
        return d.event.type in (events.EXPORT_READY, events.RETRAIN) and not (
            d.event.fields.get("tenants") or d.event.fields.get("tenant"))

    def handle(self, d: Delivery) -> None:
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
            self.settler.retry(d, describe(exc))
        except Exception as exc:
            log.exception("%s: internal error", d.describe())
            self.settler.dead_letter(d, f"internal error: {describe(exc)}")

    def _dispatch(self, d: Delivery) -> None:
        event = d.event
        assert event is not None
        if event.type == events.INTERACTION:
            self._record(d, event)
        elif self.markers.is_done(event.id):
            worker_metrics.event(d, "duplicate")
            self.settler.ack(d, "duplicate of an event already done")
        elif (crash_loop := self.counter.exceeded(d)) is not None:
            self.settler.dead_letter(d, crash_loop)
            self.counter.forget(d)
        elif event.type == events.TRAIN:
            self._start(d, lambda: jobs.run_train(self.context, event))
        elif self.needs_runner(d):
            self._start(d, lambda: jobs.run_tenants(self.context, event))
        else:
            tenants = event.fields.get("tenants") or [event.fields["tenant"]]
            self._fan_out(d, tenants)

    def _record(self, d: Delivery, event: events.Event) -> None:
        # No done marker: recording is idempotent, and a marker per interaction would grow
        # Redis by about 120 bytes per event for a week (consumer.interactions).
        if interactions.record(self.client, event):
            worker_metrics.event(d, "recorded")
            self.settler.ack(d, "interaction recorded")
        else:
            worker_metrics.event(d, "duplicate")
            self.settler.ack(d, "duplicate of an interaction already recorded")

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
            self._requeue(d)  # cannot happen with one loop thread; stay safe
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

    def collect(self) -> None:
        """Settle the jobs the runner has finished."""
        for finished in self.runner.poll():
            d: Delivery = finished.tag
            self.inflight = None
            worker_metrics.TRAINING.set(0)
            if isinstance(finished.error, FitInterrupted):
                # Left unacked: the worker is stopping, the broker redelivers the event, and
                # the run that gets it resumes from the checkpoint.
                log.warning("%s handed back unacked: %s", d.describe(), finished.error)
                continue
            self._guarded(d, partial(self._settle_job, d, finished.value, finished.error,
                                     finished.seconds))

    def _settle_job(self, d: Delivery, outcome: jobs.Outcome | None,
                    error: BaseException | None, seconds: float) -> None:
        if error is not None:
            reason = describe(error)
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
