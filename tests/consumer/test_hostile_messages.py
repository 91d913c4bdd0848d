"""Whatever arrives on the queues, the receive path reads it or says why it cannot: a message
that raises while being read would end the consumer, and the broker would hand it to the next
worker, which would end the same way (issue 15, item 1)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kombu import Connection, Producer
from kombu.message import Message
from workerkit import FakeTrainer, drain, make_worker, running, wait_for

from consumer import events
from consumer.delivery import DEAD_REASON_HEADER, Delivery, Settler
from consumer.retry import RetryPolicy
from consumer.sender import send
from consumer.topology import Topology

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20)
# Envelope-shaped bodies reach the field checks, where most odd values are met.
ENVELOPE = st.fixed_dictionaries(
    {"type": st.sampled_from(events.TYPES) | JSON, "version": st.just(events.VERSION) | JSON,
     "id": st.just("4b7c2e1a-0d3f-4a51-9e2b-1c8d7f6a5e40") | JSON,
     "created": st.just(1_700_000_000) | JSON},
    optional={"tenant": JSON | st.text(max_size=6), "tenants": JSON, "user_id": JSON
              | st.text(alphabet="0123456789²٣", max_size=6), "item_id": JSON,
              "timestamp": JSON, "rating": JSON, "algorithm": JSON, "force": JSON,
              "parent": JSON})
HEADER_VALUES = JSON | st.just(float("inf")) | st.binary(max_size=8)
HEADERS = st.none() | st.dictionaries(
    st.sampled_from(["x-attempt", "x-lock-waits", "x-death", "other"]), HEADER_VALUES,
    max_size=3)
BODIES = (JSON.map(lambda v: json.dumps(v).encode()) | ENVELOPE.map(lambda v: json.dumps(
    v).encode()) | st.binary(max_size=64) | st.just(b"[" * 100_000 + b"]" * 100_000))


def _message(body: bytes, headers, content_type) -> Message:
    return Message(body=body, content_type=content_type, headers=headers,
                   delivery_info={"routing_key": "train"})


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=BODIES, headers=HEADERS,
       content_type=st.sampled_from([None, "", "application/json", "text/plain"]))
def test_any_body_and_headers_are_read_or_refused_with_a_reason(body, headers, content_type):
    delivery = Delivery.receive(_message(body, headers, content_type), generation=1)
    assert (delivery.event is None) != (delivery.invalid is None)
    assert delivery.attempt >= 0 and delivery.lock_waits >= 0
    assert isinstance(delivery.describe(), str)


def test_the_shapes_that_ended_workers_are_refused_with_a_reason():
    base = {"version": events.VERSION, "id": "e1", "created": 1}
    cases = {
        "a list as the type": {**base, "type": []},
        "a digit int() refuses": {**base, "type": "interaction", "tenant": "1",
                                  "user_id": "²", "item_id": "engage_article1",
                                  "timestamp": 1},
        "an object as the type": {**base, "type": {"a": 1}},
    }
    for what, body in cases.items():
        delivery = Delivery.receive(_message(json.dumps(body).encode(), None, None), 1)
        assert delivery.event is None and delivery.invalid, what
    nested = Delivery.receive(_message(b"[" * 100_000 + b"]" * 100_000, None, None), 1)
    assert "nested too deeply" in nested.invalid
    odd_headers = Delivery.receive(
        _message(json.dumps({**base, "type": "train", "tenant": "1"}).encode(),
                 {"x-attempt": float("inf"), "x-lock-waits": [1]}, None), 1)
    assert odd_headers.event is not None and odd_headers.attempt == 0


def test_hostile_messages_on_both_queues_are_dead_lettered_and_the_worker_goes_on(
        memory_url, prefix, settings, fake_redis):
    # Given a worker, and messages that used to end the consumer, on both routing keys
    topology = Topology(prefix, amqp=False)
    connection = Connection(memory_url)
    trainer = FakeTrainer()
    hostile = [json.dumps({"type": []}).encode(), b"[" * 50_000 + b"]" * 50_000,
               json.dumps({"type": "interaction", "version": events.VERSION, "id": "e2",
                           "created": 1, "tenant": "1", "user_id": "²",
                           "item_id": "engage_article1", "timestamp": 1}).encode()]
    with running(make_worker(memory_url, prefix, settings, fake_redis, trainer)) as worker:
        with connection.channel() as channel:
            topology.declare(channel)
            producer = Producer(channel)
            for routing_key in (events.TRAIN, events.INTERACTION):
                for body in hostile:
                    producer.publish(body, exchange=topology.exchange, routing_key=routing_key,
                                     content_type="application/json", content_encoding="utf-8",
                                     headers={"x-attempt": "9" * 5000})
        # When a valid event follows them
        send(connection, topology, events.make_event(events.TRAIN, tenant="4"))
        # Then every hostile message is dead-lettered with a reason, and the event is trained
        wait_for(lambda: trainer.calls)
        wait_for(lambda: worker.settler.counts.get("dead") == 2 * len(hostile))
    dead = drain(connection, topology.dead_queue)
    assert len(dead) == 2 * len(hostile) and all(m.headers[DEAD_REASON_HEADER] for m in dead)
    assert trainer.calls == [("4", None, False)]
    connection.release()


def test_a_bodyless_message_with_an_odd_content_encoding_is_dead_lettered(memory_url, prefix):
    # Given a message as py-amqp hands over one without a body: '' (str), "binary" encoding
    topology = Topology(prefix, amqp=False)
    with Connection(memory_url) as connection, connection.channel() as channel:
        topology.declare(channel)
        settler = Settler(topology, RetryPolicy())
        settler.producer = Producer(channel)
        message = Message(body="", content_type="application/json", content_encoding="binary",
                          headers={}, delivery_info={"routing_key": "train"}, channel=channel)
        delivery = Delivery.receive(message, settler.generation)
        # When it is dead-lettered, then it is kept with its reason instead of raising
        settler.dead_letter(delivery, delivery.invalid or "")
        dead = drain(connection, topology.dead_queue)
    assert len(dead) == 1 and dead[0].body == b"" and dead[0].headers[DEAD_REASON_HEADER]
