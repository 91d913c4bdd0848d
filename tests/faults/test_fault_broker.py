"""RabbitMQ killed (SIGKILL of the whole node) and restarted under a real worker process.

The node is the module's own (tests/faults/servers.py: RabbitNode); the worker runs the real
pipeline. Whether the worker is idle or training when the broker dies, it reconnects by itself,
the event in hand is finished or redelivered, queued events survive, and each tenant is trained
once per event.
"""

from __future__ import annotations

import pytest
from amqp.exceptions import PreconditionFailed
from kombu import Connection
from servers import start_worker, wait_for

from consumer import events
from consumer.sender import send
from consumer.topology import Topology

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _depth(url: str, queue) -> int:
    with Connection(url) as connection, connection.channel() as channel:
        return queue.bind(channel).queue_declare(passive=True).message_count


def _publish(url: str, topology: Topology, *tenants: str) -> None:
    # The publisher waits for RabbitMQ's confirm: the events are on disk before we kill it.
    with Connection(url, transport_options={"confirm_publish": True}) as connection:
        for tenant in tenants:
            send(connection, topology, events.make_event(events.TRAIN, tenant=tenant))


def _list(client, key: str) -> list[str]:
    return [v.decode() for v in client.lrange(key, 0, -1)]


@pytest.fixture
def broker_env(fault_env, private_redis, rabbit_node, tmp_path):
    prefix = f"faults_{tmp_path.name[-20:]}".replace("[", "_").replace("]", "_")
    topology = Topology(prefix, amqp=True)
    with Connection(rabbit_node.url) as connection, connection.channel() as channel:
        topology.declare(channel)
    env = {**fault_env, "ML_REDIS_URL": private_redis.url, "ML_BROKER_URL": rabbit_node.url,
           "ML_BROKER_PREFIX": prefix}
    return env, topology


def _consuming(log_path) -> int:
    return log_path.read_text().count("consuming ")


def test_broker_killed_while_the_worker_is_idle(broker_env, rabbit_node, private_redis,
                                                processes, tmp_path):
    env, topology = broker_env
    log = tmp_path / "worker.log"
    processes.append(start_worker(env, log))
    wait_for(lambda: _consuming(log) == 1, 30, "the worker consuming")
    # Given the broker dies and comes back while the worker waits for work
    rabbit_node.kill()
    rabbit_node.start()
    # Then the worker reconnects by itself
    wait_for(lambda: _consuming(log) >= 2, 30, "the worker consuming again")
    assert processes[0].poll() is None
    # And an event published afterwards is trained once
    _publish(rabbit_node.url, topology, "0")
    client = private_redis.client()
    wait_for(lambda: _list(client, "fault:ends"), 30, "tenant 0 trained")
    wait_for(lambda: _depth(rabbit_node.url, topology.events_queue) == 0, 10, "queue empty")
    assert [e.split(":")[:2] for e in _list(client, "fault:ends")] == [["0", "published"]]
    assert _depth(rabbit_node.url, topology.dead_queue) == 0


def test_broker_killed_while_the_worker_trains(broker_env, rabbit_node, private_redis,
                                               processes, tmp_path):
    env, topology = broker_env
    log = tmp_path / "worker.log"
    # Given a worker whose trainings take 6 s, and two events: one in hand, one queued
    processes.append(start_worker({**env, "FAULT_TRAIN_DELAY": "6"}, log))
    wait_for(lambda: _consuming(log) == 1, 30, "the worker consuming")
    _publish(rabbit_node.url, topology, "0", "1")
    client = private_redis.client()
    wait_for(lambda: _list(client, "fault:starts"), 15, "the first training started")
    # When the broker is killed mid-training and restarted
    rabbit_node.kill()
    rabbit_node.start()
    # Then the worker reconnects, the training in hand finishes, the queued event survives, and
    # each tenant is trained exactly once although the first event is delivered twice
    wait_for(lambda: len(_list(client, "fault:ends")) == 2, 60, "both tenants trained")
    wait_for(lambda: _depth(rabbit_node.url, topology.events_queue) == 0, 15, "queue empty")
    assert processes[0].poll() is None
    assert sorted(s.split(":")[0] for s in _list(client, "fault:starts")) == ["0", "1"]
    assert sorted(e.split(":")[1] for e in _list(client, "fault:ends")) == ["published"] * 2
    text = log.read_text()
    assert _consuming(log) >= 2 and "duplicate of an event already done" in text
    assert _depth(rabbit_node.url, topology.dead_queue) == 0


def test_quorum_queues_carry_the_events_for_a_rabbitmq_cluster(fault_env, private_redis,
                                                               rabbit_node, processes, tmp_path):
    # Given ML_BROKER_QUEUE_TYPE=quorum (replicated queues; one node is a cluster of one)
    prefix = f"quorum_{tmp_path.name[-12:]}".replace("[", "_").replace("]", "_")
    env = {**fault_env, "ML_REDIS_URL": private_redis.url, "ML_BROKER_URL": rabbit_node.url,
           "ML_BROKER_PREFIX": prefix, "ML_BROKER_QUEUE_TYPE": "quorum"}
    topology = Topology(prefix, amqp=True, queue_type="quorum")
    log = tmp_path / "worker.log"
    processes.append(start_worker(env, log))
    wait_for(lambda: _consuming(log) == 1, 30, "the worker consuming")
    # Then the worker declared quorum queues: a classic declaration of the same name is refused
    with Connection(rabbit_node.url) as connection, connection.channel() as channel:
        with pytest.raises(PreconditionFailed):
            Topology(prefix, amqp=True).events_queue.bind(channel).declare()
    # And an event goes through them and is trained
    _publish(rabbit_node.url, topology, "1")
    client = private_redis.client()
    wait_for(lambda: _list(client, "fault:ends"), 30, "tenant 1 trained")
    assert [e.split(":")[:2] for e in _list(client, "fault:ends")] == [["1", "published"]]
