"""The worker's event handling on kombu's in-memory broker, with fakeredis and a fake trainer."""

from __future__ import annotations

import json
import threading

import pytest
import redis
from kombu import Connection, Producer
from workerkit import FakeTrainer, drain, make_worker, running, wait_for

from consumer import events
from consumer.delivery import DEAD_REASON_HEADER
from consumer.retry import ATTEMPT_HEADER
from consumer.sender import send
from consumer.topology import Topology
from published import keys
from runtime.errors import FitInterrupted


@pytest.fixture
def env(memory_url, prefix, settings, fake_redis):
    """Everything a worker test needs: (url, prefix, settings, redis, publish)."""
    topology = Topology(prefix, amqp=False)
    connection = Connection(memory_url)

    def publish(event: events.Event, headers: dict | None = None) -> None:
        send(connection, topology, event, headers)

    yield memory_url, prefix, settings, fake_redis, publish, connection, topology
    connection.release()


def train_event(tenant: str, **fields) -> events.Event:
    return events.make_event(events.TRAIN, tenant=tenant, **fields)


def test_export_ready_with_tenant_list_trains_every_tenant_once(env):
    url, prefix, settings, client, publish, connection, topology = env
    trainer = FakeTrainer()
    with running(make_worker(url, prefix, settings, client, trainer)) as worker:
        publish(events.make_event(events.EXPORT_READY, tenants=["0", "3", "7"]))
        wait_for(lambda: len(trainer.calls) == 3)
        wait_for(lambda: worker.settler.counts.get("acked") == 4)
    assert sorted(trainer.tenants()) == ["0", "3", "7"]
    assert all(force is False for _, _, force in trainer.calls)
    assert drain(connection, topology.events_queue) == []


def test_export_ready_without_list_uses_the_exports_tenants(env):
    url, prefix, settings, client, publish, connection, topology = env
    trainer = FakeTrainer()
    worker = make_worker(url, prefix, settings, client, trainer, tenants=["0", "12"])
    with running(worker):
        publish(events.make_event(events.EXPORT_READY))
        wait_for(lambda: len(trainer.calls) == 2)
    assert sorted(trainer.tenants()) == ["0", "12"]


def test_retrain_of_one_tenant_forces_training_with_the_algorithm(env):
    url, prefix, settings, client, publish, connection, topology = env
    trainer = FakeTrainer()
    with running(make_worker(url, prefix, settings, client, trainer)):
        publish(events.make_event(events.RETRAIN, tenant="5", algorithm="mf"))
        wait_for(lambda: trainer.calls)
    assert trainer.calls == [("5", "mf", True)]


def test_train_message_is_acked_only_after_the_train_function_returned(env, monkeypatch):
    url, prefix, settings, client, publish, connection, topology = env
    journal: list[str] = []
    gate = threading.Event()
    trainer = FakeTrainer(gate=gate, journal=journal)
    from kombu.message import Message

    original_ack = Message.ack

    def recording_ack(self, *args, **kwargs):
        journal.append("ack")
        return original_ack(self, *args, **kwargs)

    monkeypatch.setattr(Message, "ack", recording_ack)
    with running(make_worker(url, prefix, settings, client, trainer)) as worker:
        publish(train_event("4"))
        assert trainer.started.wait(5)
        for _ in range(10):  # the loop turns many times while the training is blocked
            assert journal == []
            threading.Event().wait(0.02)
        assert worker.inflight is not None
        gate.set()
        wait_for(lambda: "ack" in journal)
    assert journal == ["trained 4", "ack"]


def test_poison_messages_go_to_the_dead_letter_queue_and_the_worker_keeps_going(env):
    url, prefix, settings, client, publish, connection, topology = env
    trainer = FakeTrainer()
    good = train_event("1")
    with running(make_worker(url, prefix, settings, client, trainer)) as worker:
        with connection.channel() as channel:
            topology.declare(channel)
            producer = Producer(channel)
            raw = [(b"not json {", "application/json"),
                   (json.dumps({**good.body(), "type": "explode"}).encode(), "application/json"),
                   (json.dumps({**good.body(), "id": "x1", "tenant": "a{b}"}).encode(),
                    "application/json"),
                   (b"<xml/>", "application/xml")]
            for body, content_type in raw:
                producer.publish(body, exchange=topology.exchange, routing_key=events.TRAIN,
                                 content_type=content_type, content_encoding="utf-8")
        publish(good)
        wait_for(lambda: trainer.calls)
        wait_for(lambda: worker.settler.counts.get("dead") == 4)
    dead = drain(connection, topology.dead_queue)
    reasons = [m.headers[DEAD_REASON_HEADER] for m in dead]
    assert len(dead) == 4
    assert "not JSON" in reasons[0]
    assert "unknown event type 'explode'" in reasons[1]
    assert "tenant must be a tenant id" in reasons[2]
    assert "content type" in reasons[3]
    assert dead[0].body == b"not json {"  # kept untouched for an operator
    assert trainer.calls == [("1", None, False)]


def test_retryable_failure_is_retried_with_an_attempt_counter_then_succeeds(env):
    url, prefix, settings, client, publish, connection, topology = env
    trainer = FakeTrainer(errors=[redis.ConnectionError("Redis went away")])
    with running(make_worker(url, prefix, settings, client, trainer)) as worker:
        publish(train_event("2"))
        wait_for(lambda: len(trainer.calls) == 2 and worker.inflight is None)
        wait_for(lambda: worker.settler.counts.get("acked") == 2)
    assert worker.settler.counts["retried"] == 1
    assert drain(connection, topology.dead_queue) == []


def test_retryable_failure_is_dead_lettered_after_the_last_attempt(env):
    url, prefix, settings, client, publish, connection, topology = env
    trainer = FakeTrainer(errors=[OSError("disk full")] * 3)
    with running(make_worker(url, prefix, settings, client, trainer)) as worker:
        publish(train_event("2"))
        wait_for(lambda: worker.settler.counts.get("dead") == 1)
    assert len(trainer.calls) == 3
    (dead,) = drain(connection, topology.dead_queue)
    assert "gave up after 3 attempts: OSError: disk full" in dead.headers[DEAD_REASON_HEADER]
    assert dead.headers[ATTEMPT_HEADER] == 2


def test_unexpected_error_is_dead_lettered_without_retry(env):
    url, prefix, settings, client, publish, connection, topology = env
    trainer = FakeTrainer(errors=[ValueError("bug")])
    with running(make_worker(url, prefix, settings, client, trainer)) as worker:
        publish(train_event("2"))
        wait_for(lambda: worker.settler.counts.get("dead") == 1)
    assert len(trainer.calls) == 1


def test_failed_status_is_acked_and_not_retried(env):
    url, prefix, settings, client, publish, connection, topology = env
    trainer = FakeTrainer(status="failed")
    with running(make_worker(url, prefix, settings, client, trainer)) as worker:
        publish(train_event("2"))
        wait_for(lambda: worker.settler.counts.get("acked") == 1)
    assert len(trainer.calls) == 1
    assert drain(connection, topology.dead_queue) == []


def test_duplicate_delivery_of_an_event_does_not_train_twice(env):
    url, prefix, settings, client, publish, connection, topology = env
    trainer = FakeTrainer()
    event = train_event("9")
    with running(make_worker(url, prefix, settings, client, trainer)) as worker:
        publish(event)
        wait_for(lambda: worker.settler.counts.get("acked") == 1)
        publish(event)
        wait_for(lambda: worker.settler.counts.get("acked") == 2)
    assert trainer.calls == [("9", None, False)]


def test_redelivered_export_ready_fans_out_to_the_same_train_ids(env):
    url, prefix, settings, client, publish, connection, topology = env
    trainer = FakeTrainer()
    ready = events.make_event(events.EXPORT_READY, tenants=["1", "2"])
    with running(make_worker(url, prefix, settings, client, trainer)) as worker:
        publish(ready)
        wait_for(lambda: len(trainer.calls) == 2)
        client.delete(f"ml:consumer:done:{ready.id}")  # as if the ack had been lost
        publish(ready)
        wait_for(lambda: worker.settler.counts.get("acked") == 6)
    assert sorted(trainer.tenants()) == ["1", "2"]


def test_train_for_a_locked_tenant_is_requeued_until_the_lock_is_free(env):
    url, prefix, settings, client, publish, connection, topology = env
    client.set(keys.lock("6"), "another-host:1:abc", px=400)
    trainer = FakeTrainer()
    with running(make_worker(url, prefix, settings, client, trainer)) as worker:
        publish(train_event("6"))
        wait_for(lambda: trainer.calls)
    assert worker.settler.counts["lock_waits"] >= 1
    assert trainer.calls == [("6", None, False)]
    assert client.get(keys.lock("6")) is None  # released after the training


def test_interaction_events_land_in_the_bounded_recent_list(env):
    url, prefix, settings, client, publish, connection, topology = env
    with running(make_worker(url, prefix, settings, client, FakeTrainer())) as worker:
        for n in range(105):
            publish(events.make_event(events.INTERACTION, tenant="3", user_id=42,
                                      item_id=f"engage_article{n}", timestamp=1700000000 + n,
                                      rating=n % 2))
        wait_for(lambda: worker.settler.counts.get("acked") == 105)
    recent = [json.loads(v) for v in client.lrange(keys.recent("3", 42), 0, -1)]
    assert len(recent) == 100
    assert recent[0] == {"item_id": "engage_article104", "timestamp": 1700000104, "rating": 0}
    assert 29 * 86400 < client.ttl(keys.recent("3", 42)) <= 30 * 86400


def test_interactions_are_recorded_while_a_training_runs(env):
    url, prefix, settings, client, publish, connection, topology = env
    gate = threading.Event()
    trainer = FakeTrainer(gate=gate)
    with running(make_worker(url, prefix, settings, client, trainer)):
        publish(train_event("1"))
        assert trainer.started.wait(5)
        publish(events.make_event(events.INTERACTION, tenant="1", user_id=7,
                                  item_id="container_course3", timestamp=1700000000))
        wait_for(lambda: client.llen(keys.recent("1", 7)) == 1)
        gate.set()


def test_stop_leaves_an_unfinished_training_unacked_and_frees_its_tenant(env):
    # The redelivery itself needs a real broker (kombu's memory transport never restores):
    # see test_rabbitmq.py and test_redis_broker.py.
    url, prefix, settings, client, publish, connection, topology = env
    gate = threading.Event()
    slow = FakeTrainer(gate=gate)
    worker = make_worker(url, prefix, settings, client, slow, stop_grace=0.2)
    with running(worker):
        publish(train_event("8"))
        assert slow.started.wait(5)
        assert client.get(keys.lock("8")) is not None
    assert "acked" not in worker.settler.counts
    assert client.get(keys.lock("8")) is None
    gate.set()


def test_stop_lets_a_training_finish_within_the_grace_period(env):
    url, prefix, settings, client, publish, connection, topology = env
    trainer = FakeTrainer(seconds=0.3)
    worker = make_worker(url, prefix, settings, client, trainer, stop_grace=5)
    import threading as th

    thread = th.Thread(target=worker.serve, daemon=True)
    thread.start()
    wait_for(lambda: worker.ready)
    publish(train_event("8"))
    assert trainer.started.wait(5)
    worker.request_stop()
    thread.join(5)
    assert not thread.is_alive()
    assert worker.settler.counts.get("acked") == 1
    assert drain(connection, topology.events_queue) == []


def test_the_alive_file_is_touched_while_the_worker_loops(env, tmp_path):
    url, prefix, settings, client, publish, connection, topology = env
    worker = make_worker(url, prefix, settings, client, FakeTrainer())
    worker.alive_file = tmp_path / "alive"
    with running(worker):
        wait_for(lambda: worker.alive_file.exists())


def test_an_error_while_handling_dead_letters_the_message_instead_of_crashing(env):
    url, prefix, settings, client, publish, connection, topology = env
    trainer = FakeTrainer()
    # tenants.csv with a name no train event can carry: the fan-out fails on this worker's
    # connection thread, which must survive it.
    worker = make_worker(url, prefix, settings, client, trainer, tenants=["0", "x{1}"])
    with running(worker):
        publish(events.make_event(events.EXPORT_READY))
        wait_for(lambda: worker.settler.counts.get("dead") == 1)
        publish(train_event("5"))
        wait_for(lambda: trainer.calls)
    (dead,) = drain(connection, topology.dead_queue)
    assert dead.headers[DEAD_REASON_HEADER].startswith("internal error: InvalidEvent")
    assert trainer.calls == [("5", None, False)]  # no train event of the bad fan-out was sent


def test_past_the_grace_the_fit_is_interrupted_and_its_event_left_unacked(env):
    url, prefix, settings, client, publish, connection, topology = env
    # Given a training that only ends when asked to stop, as a fit stops at an epoch boundary
    worker = make_worker(url, prefix, settings, client, None, stop_grace=0.1)
    worker.checkpoint_wait = 5.0
    interrupt = worker.context.service.interrupt
    started = threading.Event()

    def fit(*args, **kwargs):
        started.set()
        assert interrupt.wait(5), "never interrupted"
        raise FitInterrupted("stopped after 3 validation epoch(s); checkpointed")

    worker.context.service._train = fit
    thread = threading.Thread(target=worker.serve, daemon=True)
    thread.start()
    wait_for(lambda: worker.ready)
    publish(train_event("8"))
    assert started.wait(5)
    # When the worker is told to stop once, and the grace runs out
    worker.request_stop()
    thread.join(5)
    # Then the fit was interrupted and the event neither acked, retried nor dead-lettered: the
    # broker redelivers it to the worker that resumes the fit (test_worker_process.py, RabbitMQ)
    assert not thread.is_alive() and interrupt.is_set()
    assert set(worker.settler.counts) & {"acked", "retried", "dead"} == set()
    assert client.get(keys.lock("8")) is None
