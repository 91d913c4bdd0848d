"""The worker against the real RabbitMQ and Redis (each test with its own exchange and queues)."""

from __future__ import annotations

import json
import os
import threading
import time

import amqp
import pytest
from kombu import Connection
from tcpproxy import TcpProxy
from workerkit import FakeTrainer, drain, make_worker, queue_depth, running, wait_for

from consumer import events
from consumer.delivery import DEAD_REASON_HEADER
from consumer.scheduler import SCHEDULED_HEADER
from consumer.sender import send
from consumer.topology import Topology
from published import keys

pytestmark = pytest.mark.integration


@pytest.fixture
def rabbit(amqp_url, prefix, settings, real_redis):
    """(url, prefix, settings, redis, publish, connection, topology) on the real services."""
    topology = Topology(prefix, amqp=True)
    connection = Connection(amqp_url)

    def publish(event: events.Event, headers: dict | None = None) -> None:
        send(connection, topology, event, headers)

    with connection.channel() as channel:
        topology.declare(channel)
    yield amqp_url, prefix, settings, real_redis, publish, connection, topology
    connection.release()


def test_export_ready_fans_out_to_every_tenant_across_two_workers(rabbit):
    url, prefix, settings, client, publish, connection, topology = rabbit
    tenants = [str(n) for n in range(12)]
    trainer = FakeTrainer(seconds=0.05)
    a = make_worker(url, prefix, settings, client, trainer, tenants=tenants)
    b = make_worker(url, prefix, settings, client, trainer, tenants=tenants)
    with running(a), running(b):
        publish(events.make_event(events.EXPORT_READY))
        wait_for(lambda: len(trainer.calls) == 12, timeout=10)
        wait_for(lambda: a.inflight is None and b.inflight is None and queue_depth(
            connection, topology.events_queue) == 0)
    assert sorted(trainer.tenants(), key=int) == tenants
    assert a.settler.counts.get("acked", 0) + b.settler.counts.get("acked", 0) == 13


def test_ack_comes_only_after_training_and_a_stopped_worker_hands_its_message_back(rabbit):
    url, prefix, settings, client, publish, connection, topology = rabbit
    gate = threading.Event()
    blocked = FakeTrainer(gate=gate)
    first = make_worker(url, prefix, settings, client, blocked, stop_grace=0.1)
    with running(first):
        publish(events.make_event(events.TRAIN, tenant="3"))
        assert blocked.started.wait(5)
        assert queue_depth(connection, topology.events_queue) == 0  # delivered, not acked
    # Stopped mid-training: not acked, so RabbitMQ has it ready again for the next worker.
    wait_for(lambda: queue_depth(connection, topology.events_queue) == 1)
    journal: list[str] = []
    trainer = FakeTrainer(journal=journal)
    second = make_worker(url, prefix, settings, client, trainer)
    with running(second):
        wait_for(lambda: second.settler.counts.get("acked") == 1)
    assert journal == ["trained 3"]
    assert queue_depth(connection, topology.events_queue) == 0
    gate.set()


def test_poison_messages_are_dead_lettered_and_the_worker_keeps_going(rabbit):
    url, prefix, settings, client, publish, connection, topology = rabbit
    trainer = FakeTrainer()
    good = events.make_event(events.TRAIN, tenant="1")
    bare = events.make_event(events.TRAIN, tenant="2")
    with running(make_worker(url, prefix, settings, client, trainer)) as worker:
        # A plain AMQP client (php-amqplib style): no content type at all.
        raw = amqp.Connection("127.0.0.1:5672", userid="guest", password="guest")
        raw.connect()
        channel = raw.channel()
        for body, key in ((b"\x00garbage", events.TRAIN),
                          (json.dumps({**good.body(), "type": "explode"}), events.TRAIN),
                          (json.dumps({**good.body(), "tenant": []}), events.TRAIN),
                          (json.dumps(good.body()), "no-such-route"),
                          (json.dumps(bare.body()), events.TRAIN)):
            channel.basic_publish(amqp.Message(body), exchange=prefix, routing_key=key)
        raw.close()
        publish(good)
        wait_for(lambda: len(trainer.calls) == 2)
        wait_for(lambda: worker.settler.counts.get("dead") == 3)
    dead = drain(connection, topology.dead_queue)
    assert len(dead) == 4
    reasons = sorted(str((m.headers or {}).get(DEAD_REASON_HEADER)) for m in dead)
    assert any("not JSON" in r for r in reasons)
    assert any("unknown event type" in r for r in reasons)
    assert any("tenant must be" in r for r in reasons)
    # The unroutable one went through the alternate exchange: kept, though without a reason.
    assert "None" in reasons
    assert sorted(trainer.tenants()) == ["1", "2"]


def test_two_workers_and_one_tenant_train_one_at_a_time(rabbit):
    url, prefix, settings, client, publish, connection, topology = rabbit
    trainer = FakeTrainer(seconds=0.2)
    a = make_worker(url, prefix, settings, client, trainer, lock_ttl=2)
    b = make_worker(url, prefix, settings, client, trainer, lock_ttl=2)
    with running(a), running(b):
        for _ in range(3):
            publish(events.make_event(events.TRAIN, tenant="5", force=True))
        wait_for(lambda: len(trainer.calls) == 3, timeout=10)
        wait_for(lambda: queue_depth(connection, topology.events_queue) == 0
                 and a.inflight is None and b.inflight is None and not len(a.settler.held)
                 and not len(b.settler.held))
    assert trainer.max_by_tenant == {"5": 1}
    assert client.get(keys.lock("5")) is None


def test_different_tenants_train_in_parallel_on_two_workers(rabbit):
    url, prefix, settings, client, publish, connection, topology = rabbit
    trainer = FakeTrainer()
    trainer.barrier = threading.Barrier(2)  # each training waits until the other one runs
    a = make_worker(url, prefix, settings, client, trainer)
    b = make_worker(url, prefix, settings, client, trainer)
    with running(a), running(b):
        publish(events.make_event(events.EXPORT_READY, tenants=["1", "2"]))
        wait_for(lambda: a.settler.counts.get("acked", 0) + b.settler.counts.get("acked", 0)
                 == 3)
    assert trainer.max_running == 2


def test_two_schedulers_publish_one_export_ready_per_period(rabbit):
    url, prefix, settings, client, publish, connection, topology = rabbit
    published: list[int] = []
    workers = [make_worker(url, prefix, settings, client, FakeTrainer(), tenants=["0"],
                           schedule_seconds=1) for _ in range(2)]
    for worker in workers:
        original = worker.scheduler.publish

        def spy(event, headers, original=original):
            original(event, headers)
            published.append(headers[SCHEDULED_HEADER])

        worker.scheduler.publish = spy
    # No model yet: the first start publishes at once (once for both workers).
    with running(workers[0]), running(workers[1]):
        time.sleep(2.6)
    assert published, "nothing was scheduled"
    assert len(published) == len(set(published)), published
    assert published == list(range(published[0], published[0] + len(published)))
    assert 2 <= len(published) <= 4


def test_an_interaction_event_lands_in_the_users_recent_list(rabbit):
    url, prefix, settings, client, publish, connection, topology = rabbit
    with running(make_worker(url, prefix, settings, client, FakeTrainer())):
        publish(events.make_event(events.INTERACTION, tenant="0", user_id=77,
                                  item_id="engage_article5", timestamp=1700000000, rating=1))
        wait_for(lambda: client.llen(keys.recent("0", 77)) == 1)
    assert json.loads(client.lindex(keys.recent("0", 77), 0)) == {
        "item_id": "engage_article5", "timestamp": 1700000000, "rating": 1}


def test_the_worker_reconnects_by_itself_after_the_broker_connection_drops(rabbit):
    url, prefix, settings, client, publish, connection, topology = rabbit
    proxy = TcpProxy(("127.0.0.1", 5672)).start()
    proxied = url.replace("127.0.0.1:5672", f"127.0.0.1:{proxy.port}")
    assert proxied != url
    trainer = FakeTrainer()
    worker = make_worker(proxied, prefix, settings, client, trainer)
    try:
        with running(worker):
            proxy.stop()  # as if RabbitMQ restarted: the connection is reset, then refused
            wait_for(lambda: not worker.ready)
            time.sleep(0.5)
            proxy.start()
            wait_for(lambda: worker.ready and worker.settler.generation == 2, timeout=10)
            publish(events.make_event(events.TRAIN, tenant="4"))
            wait_for(lambda: trainer.calls)
            wait_for(lambda: worker.settler.counts.get("acked") == 1)
    finally:
        proxy.stop()



def test_the_alive_file_stays_fresh_while_the_broker_is_unreachable(rabbit, tmp_path):
    url, prefix, settings, client, publish, connection, topology = rabbit
    proxy = TcpProxy(("127.0.0.1", 5672)).start()
    proxied = url.replace("127.0.0.1:5672", f"127.0.0.1:{proxy.port}")
    alive = tmp_path / "worker.alive"
    worker = make_worker(proxied, prefix, settings, client, FakeTrainer(), alive_file=alive)
    worker.alive_every = 0.2
    try:
        with running(worker):
            # Given RabbitMQ goes away (connections reset, then refused) for longer than the
            # liveness probe's patience
            proxy.stop()
            wait_for(lambda: not worker.ready)
            os.utime(alive, (0, 0))
            # Then the reconnect loop keeps the file fresh: no CrashLoopBackOff for an outage
            wait_for(lambda: time.time() - alive.stat().st_mtime < 2, timeout=5)
            time.sleep(1.5)
            assert not worker.ready and time.time() - alive.stat().st_mtime < 2
            proxy.start()
            wait_for(lambda: worker.ready, timeout=10)
    finally:
        proxy.stop()


def test_heartbeats_go_on_while_a_long_training_runs(rabbit):
    url, prefix, settings, client, publish, connection, topology = rabbit
    # With a 1 s heartbeat, RabbitMQ drops a silent connection after about 2 s; the training
    # runs 3.5 s on the other thread while the connection thread keeps the connection alive.
    trainer = FakeTrainer(seconds=3.5)
    worker = make_worker(url, prefix, settings, client, trainer, heartbeat=1)
    with running(worker):
        publish(events.make_event(events.TRAIN, tenant="9"))
        wait_for(lambda: worker.settler.counts.get("acked") == 1, timeout=10)
    assert worker.settler.generation == 1  # never reconnected
    assert "orphaned" not in worker.settler.counts
