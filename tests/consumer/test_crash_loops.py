"""Crash loops end (issue 15, item 2): a message delivered more than ML_MAX_DELIVERIES times
without an ack is dead-lettered with the reason instead of being handled once more."""

from __future__ import annotations

import threading

import pytest
from kombu import Connection
from kombu.message import Message
from kombu.transport import memory
from workerkit import FakeTrainer, drain, make_worker, running, wait_for

from consumer import events
from consumer.delivery import DEAD_REASON_HEADER, Delivery
from consumer.redeliveries import DeliveryCounter
from consumer.sender import send
from consumer.topology import Topology
from runtime.config import from_env
from runtime.errors import ConfigError


def _delivery(headers=None, redelivered=False, body=b'{"type": "train"}') -> Delivery:
    message = Message(body=body, headers=headers or {}, content_type="application/json",
                      delivery_info={"routing_key": "train", "redelivered": redelivered})
    return Delivery.receive(message, generation=1)


def test_quorum_queues_are_counted_by_the_brokers_headers(fake_redis):
    counter = DeliveryCounter(fake_redis, 3, broker_counts=True)
    assert counter.redeliveries(_delivery()) == 0
    assert counter.redeliveries(_delivery({"x-delivery-count": 2}, redelivered=True)) == 2
    assert counter.redeliveries(_delivery({"x-acquired-count": 4, "x-delivery-count": 0},
                                          True)) == 4
    assert counter.exceeded(_delivery({"x-delivery-count": 2}, True)) is None
    reason = counter.exceeded(_delivery({"x-delivery-count": 3}, True))
    assert reason and "3 deliveries ended without an ack" in reason
    assert "ML_MAX_DELIVERIES=3" in reason
    assert fake_redis.keys() == []  # the broker counted: nothing stored


def test_other_transports_count_redeliveries_in_redis_and_first_deliveries_cost_nothing(
        fake_redis):
    counter = DeliveryCounter(fake_redis, 3)
    assert counter.redeliveries(_delivery({"x-delivery-count": 99})) == 0  # a publisher's
    assert fake_redis.keys() == []
    assert [counter.redeliveries(_delivery(redelivered=True)) for _ in range(3)] == [1, 2, 3]
    # A retry's copy is another message: its own count
    assert counter.redeliveries(_delivery({"x-attempt": 1}, redelivered=True)) == 1
    assert all(0 < fake_redis.ttl(key) for key in fake_redis.keys())


def test_a_copy_carries_the_unacked_deliveries_of_the_messages_before_it(fake_redis):
    # Given a copy (a lock wait after a crash) that says one delivery before it was lost
    counter = DeliveryCounter(fake_redis, 2, broker_counts=True)
    first = _delivery({"x-unacked-deliveries": 1})
    assert counter.exceeded(first) is None and first.unacked == 1
    # When the copy itself is lost once, then its next delivery is the limit's
    again = _delivery({"x-unacked-deliveries": 1, "x-delivery-count": 1}, True)
    assert "2 deliveries ended without an ack" in counter.exceeded(again)


@pytest.mark.parametrize("value", ["0", "-1", "five", "1001"])
def test_a_bad_max_deliveries_fails_at_start_with_one_line(base_env, value):
    with pytest.raises(ConfigError) as error:
        from_env({**base_env, "ML_MAX_DELIVERIES": value})
    assert str(error.value) == (f"ML_MAX_DELIVERIES={value!r}: expected a whole number from 1 "
                                "to 1000")
    assert from_env(base_env).max_deliveries == 5


def test_a_message_no_worker_survives_is_dead_lettered_after_max_deliveries(
        memory_url, prefix, settings, fake_redis, monkeypatch):
    # Given a train event whose handling never ends: each worker is stopped holding it, unacked,
    # and the broker hands it back as a redelivery, as RabbitMQ does for a dead worker (kombu's
    # memory transport drops unacked messages unless told to restore them)
    monkeypatch.setattr(memory.Channel, "do_restore", True)
    gate = threading.Event()
    trainer = FakeTrainer(gate=gate)
    topology = Topology(prefix, amqp=False)
    connection = Connection(memory_url)
    send(connection, topology, events.make_event(events.TRAIN, tenant="3"))
    try:
        for delivered in (1, 2):
            with running(make_worker(memory_url, prefix, settings, fake_redis, trainer,
                                     max_deliveries=2)):
                wait_for(lambda n=delivered: len(trainer.calls) == n)
        # When the next worker is given it a third time
        worker = make_worker(memory_url, prefix, settings, fake_redis, trainer,
                             max_deliveries=2)
        with running(worker):
            wait_for(lambda: worker.settler.counts.get("dead") == 1)
            # Then it is dead-lettered unhandled, with the reason, and the worker goes on
            send(connection, topology, events.make_event(events.TRAIN, tenant="4"))
            wait_for(lambda: [c[0] for c in trainer.calls] == ["3", "3", "4"])
    finally:
        gate.set()
    dead = drain(connection, topology.dead_queue)
    assert len(dead) == 1
    assert "2 deliveries ended without an ack" in dead[0].headers[DEAD_REASON_HEADER]
    # Moved back from the dead-letter queue, it would be handled again: nothing counts against it
    assert dead[0].headers["x-unacked-deliveries"] == 0
    assert fake_redis.keys("ml:consumer:deliveries:*") == []
    connection.release()
