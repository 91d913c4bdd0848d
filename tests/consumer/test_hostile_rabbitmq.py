"""Malformed messages on the real RabbitMQ, on every routing key, then a real export trained by the
same worker (issue 15, item 1): each malformed message is dead-lettered with its reason and acked,
and none of them keeps the export from being published."""

from __future__ import annotations

import json

import pytest
from kombu import Connection, Producer
from workerkit import drain, export_worker, queue_depth, running, wait_for

from consumer import events
from consumer.delivery import DEAD_REASON_HEADER
from consumer.sender import send
from consumer.topology import EVENT_KEYS, INTERACTION_KEYS, Topology
from published import keys
from recommender import pipeline
from recommender.model.params import TrainParams

pytestmark = pytest.mark.integration

FAST = TrainParams(components=8, max_epochs=4, patience=1)
ENVELOPE = {"version": events.VERSION, "id": "3f0c8a52-77d1-4e0b-a3a4-5b1f2c9d8e61",
            "created": 1_700_000_000}


def fast_train(settings, client, tenant, **options):
    return pipeline.train_tenant(settings, client, tenant, params=FAST, **options)


def malformed_messages() -> list[tuple[bytes, str, dict]]:
    """(body, content type, headers): every shape the receive path must refuse without dying."""
    huge = json.dumps({**ENVELOPE, "type": "train", "tenant": "7" * 3_000_000}).encode()
    return [
        (b"\xff\xfe{\"type\": \"train\"}\x80", "application/json", {}),  # not UTF-8
        (b"this is not JSON", "application/json", {}),
        (b"", "application/json", {}),
        (json.dumps({"type": []}).encode(), "application/json", {}),
        (json.dumps([1, 2, 3]).encode(), "application/json", {}),
        (json.dumps({**ENVELOPE, "type": "train", "tenant": {"a": 1}}).encode(),
         "application/json", {}),
        (json.dumps({**ENVELOPE, "type": "interaction", "tenant": "1", "user_id": "²",
                     "item_id": "engage_article1", "timestamp": 1}).encode(),
         "application/json", {}),
        (b"[" * 200_000 + b"]" * 200_000, "application/json", {}),  # nesting past the parser
        (huge, "application/json", {}),  # about 3 MB
        (json.dumps({"type": {"nested": [None]}}).encode(), "text/plain",
         {"x-attempt": "9" * 5000, "x-lock-waits": [1, {"a": b"\x00"}], "x-delivery-count": "x",
          "x-death": "not a list", "": "empty name"}),
    ]


def test_malformed_messages_on_every_routing_key_are_dead_lettered_and_an_export_trains(
        amqp_url, prefix, base_env, real_redis, tmp_path):
    # Given a worker on the real RabbitMQ and a real export of two tenants
    setup = export_worker(amqp_url, prefix, base_env, real_redis, tmp_path, fast_train)
    worker, tenants = setup.worker, setup.tenants
    topology = Topology(prefix, amqp=True)
    bad = malformed_messages()
    routing_keys = EVENT_KEYS + INTERACTION_KEYS
    with Connection(amqp_url, transport_options={"confirm_publish": True}) as connection, \
            running(worker):
        # When every malformed message is published on every routing key
        with connection.channel() as channel:
            topology.declare(channel)
            producer = Producer(channel)
            for routing_key in routing_keys:
                for body, content_type, headers in bad:
                    producer.publish(body, exchange=topology.exchange, routing_key=routing_key,
                                     content_type=content_type, content_encoding="binary",
                                     headers=headers, delivery_mode=2)
        # And then the export is announced as Totara does
        send(connection, topology, events.make_event(events.EXPORT_READY))
        # Then the export's lists are published by the same worker
        wait_for(lambda: all(real_redis.get(keys.current(t)) for t in tenants), timeout=120)
        expected = len(bad) * len(routing_keys)
        wait_for(lambda: worker.settler.counts.get("dead", 0) == expected, timeout=60)
        assert queue_depth(connection, topology.events_queue) == 0
        assert queue_depth(connection, topology.interactions_queue) == 0
        # And each malformed message is in the dead-letter queue with its reason
        dead = drain(connection, topology.dead_queue)
    assert len(dead) == expected
    assert all(str(m.headers.get(DEAD_REASON_HEADER, "")).strip() for m in dead)
    assert sorted(m.headers["x-original-routing-key"] for m in dead) == sorted(
        k for k in routing_keys for _ in bad)
    assert real_redis.smembers(keys.TENANTS) == {t.encode() for t in tenants}
