"""A real three-node RabbitMQ cluster (issue 15, item 9): quorum queues, and the node the worker is
connected to SIGKILLed while it trains. The worker fails over to another node named in
ML_BROKER_URL (alternates separated by ``;``), the event in hand is finished once, the queued
one is not lost, and a new event is trained afterwards.

The nodes are the test's own (tests/faults/rabbitcluster.py), on loopback ports picked at start;
the test skips only where RabbitMQ is not installed, and fails in CI if it is missing.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator

import pytest
from kombu import Connection
from rabbitcluster import RabbitCluster, hard_timeout
from servers import free_port, start_worker, wait_for

from api import checks
from consumer import events
from consumer.sender import send
from consumer.topology import Topology
from published import keys

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Hard limits (usually about 30 s each on a 2-CPU machine); whatever happens, the nodes are
# killed and their folders removed afterwards.
FORMATION_LIMIT_SECONDS = 120
TEST_LIMIT_SECONDS = 120


@pytest.fixture
def cluster(tmp_path) -> Iterator[RabbitCluster]:
    if not RabbitCluster.available():
        if os.environ.get("CI"):
            pytest.fail("rabbitmq-server is required in CI for the RabbitMQ cluster test")
        pytest.skip("rabbitmq-server is not installed")
    started = time.monotonic()
    with hard_timeout(FORMATION_LIMIT_SECONDS):
        nodes = RabbitCluster(tmp_path / "cluster").start(timeout=90)
    nodes.formed_seconds = time.monotonic() - started
    yield nodes
    nodes.stop()


def _list(client, key: str) -> list[str]:
    return [v.decode() for v in client.lrange(key, 0, -1)]


def _depth(url: str, queue) -> int:
    with Connection(url) as connection, connection.channel() as channel:
        return queue.bind(channel).queue_declare(passive=True).message_count


def _connected_port(log) -> int:
    """The AMQP port of the node the worker consumes from now (its last "consuming" line)."""
    ports = re.findall(r"consuming .* on amqp://[^@]*@127\.0\.0\.1:(\d+)", log.read_text())
    return int(ports[-1]) if ports else 0


def test_the_node_a_training_worker_is_connected_to_is_killed(
        cluster, fault_env, private_redis, processes, tmp_path, report):
    prefix = "cluster_test"
    topology = Topology(prefix, amqp=True, queue_type="quorum")
    env = {**fault_env, "ML_REDIS_URL": private_redis.url, "ML_BROKER_PREFIX": prefix,
           "ML_BROKER_URL": ";".join(cluster.urls), "ML_BROKER_QUEUE_TYPE": "quorum",
           "FAULT_TRAIN_DELAY": "4"}
    log = tmp_path / "worker.log"
    client = private_redis.client()
    with hard_timeout(TEST_LIMIT_SECONDS):
        started = time.monotonic()
        # Given a worker on the cluster (quorum queues, three replicas) and two train events:
        # one in hand, one queued
        processes.append(start_worker(env, log))
        wait_for(lambda: _connected_port(log), 30, "the worker consuming")
        victim = next(n for n in cluster.nodes if n.port == _connected_port(log))
        survivor = next(n for n in cluster.nodes if n is not victim)
        sent = [events.make_event(events.TRAIN, tenant=tenant) for tenant in ("0", "1")]
        with Connection(survivor.url, transport_options={"confirm_publish": True}) as conn:
            for event in sent:
                send(conn, topology, event)
        wait_for(lambda: _list(client, "fault:starts"), 30, "the first training started")
        # When the node the worker is connected to is killed mid-training
        victim.kill()
        killed = time.monotonic()
        # Then the worker fails over to another node, and both events are trained once
        wait_for(lambda: _connected_port(log) not in (0, victim.port), 30, "failover")
        failover = time.monotonic() - killed
        assert checks.broker(";".join(cluster.urls)) is None  # /health-check: the broker is up
        wait_for(lambda: len(_list(client, "fault:ends")) == 2, 60, "both tenants trained")
        # And a new event published afterwards is trained too
        sent.append(events.make_event(events.TRAIN, tenant="0", force=True))
        with Connection(survivor.url, transport_options={"confirm_publish": True}) as conn:
            send(conn, topology, sent[-1])
        wait_for(lambda: f"{sent[-1].id} tenant=0: status published; acked" in log.read_text(),
                 60, "the new event trained and acked")
        wait_for(lambda: _depth(survivor.url, topology.events_queue) == 0, 15, "queue empty")
        assert _depth(survivor.url, topology.dead_queue) == 0
        assert processes[0].poll() is None
        assert all(client.exists(keys.done(event.id)) for event in sent)  # none lost
    ends = [e.split(":")[:2] for e in _list(client, "fault:ends")]
    assert sorted(ends[:2]) == [["0", "published"], ["1", "published"]]
    assert ends[2] == ["0", "published"]
    starts = [s.split(":")[0] for s in _list(client, "fault:starts")]
    assert sorted(starts[:2]) == ["0", "1"] and len(starts) == 3  # nothing trained twice
    report.append(f"RabbitMQ cluster of 3 nodes (formed in {cluster.formed_seconds:.0f}s), the "
                  f"worker's node SIGKILLed mid-training: failover in {failover:.1f}s, 3 events "
                  f"trained once each, 0 lost, test body {time.monotonic() - started:.0f}s")


def test_the_health_check_finds_the_broker_through_any_of_its_failover_urls(rabbitmq_url):
    # Given ML_BROKER_URL naming a node that is down first, then one that answers
    down = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    # Then the broker is reachable, as it is for the workers; and down when every node is
    assert checks.broker(f"{down};{rabbitmq_url}") is None
    assert "Unable to connect" in checks.broker(f"{down};{down}")
