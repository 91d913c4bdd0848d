"""The embedded default's broker: kombu's Redis transport (real Redis), no RabbitMQ extras."""

from __future__ import annotations

import threading

import pytest
from kombu import Connection, Producer
from workerkit import FakeTrainer, drain, make_worker, running, wait_for

from consumer import events
from consumer.delivery import DEAD_REASON_HEADER
from consumer.sender import send
from consumer.topology import Topology

pytestmark = pytest.mark.integration


@pytest.fixture
def redis_broker(real_redis_url, prefix, settings, real_redis):
    topology = Topology(prefix, amqp=False)
    connection = Connection(real_redis_url)

    def publish(event: events.Event) -> None:
        send(connection, topology, event)

    yield real_redis_url, prefix, settings, real_redis, publish, connection, topology
    connection.release()


def test_fan_out_retry_and_dead_letter_work_on_the_redis_transport(redis_broker):
    url, prefix, settings, client, publish, connection, topology = redis_broker
    trainer = FakeTrainer(errors=[OSError("Totara answered 202")])
    a = make_worker(url, prefix, settings, client, trainer)
    b = make_worker(url, prefix, settings, client, trainer)
    with running(a), running(b):
        publish(events.make_event(events.EXPORT_READY, tenants=["0", "1", "2"]))
        publish(events.make_event(events.TRAIN, tenant="3"))
        with connection.channel() as channel:
            Producer(channel).publish(b"[\"not an event\"]", exchange=topology.exchange,
                                      routing_key=events.TRAIN, content_type="application/json",
                                      content_encoding="utf-8")
        wait_for(lambda: len(trainer.calls) == 5, timeout=10)  # 4 tenants, one retried
        wait_for(lambda: a.settler.counts.get("dead", 0) + b.settler.counts.get("dead", 0) == 1)
    assert sorted(set(trainer.tenants())) == ["0", "1", "2", "3"]
    (dead,) = drain(connection, topology.dead_queue)
    assert "must be a JSON object" in dead.headers[DEAD_REASON_HEADER]


def test_a_stopped_worker_hands_its_message_back_on_the_redis_transport(redis_broker):
    url, prefix, settings, client, publish, connection, topology = redis_broker
    gate = threading.Event()
    blocked = FakeTrainer(gate=gate)
    with running(make_worker(url, prefix, settings, client, blocked, stop_grace=0.1)):
        publish(events.make_event(events.TRAIN, tenant="4"))
        assert blocked.started.wait(5)
    trainer = FakeTrainer()
    with running(make_worker(url, prefix, settings, client, trainer)) as worker:
        wait_for(lambda: worker.settler.counts.get("acked") == 1)
    assert trainer.calls == [("4", None, False)]
    gate.set()
