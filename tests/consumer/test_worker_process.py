"""Real worker processes (tests/consumer/slow_worker.py) killed or stopped mid-training."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from kombu import Connection
from workerkit import drain, queue_depth, wait_for

from consumer import events
from consumer.delivery import DEAD_REASON_HEADER
from consumer.sender import send
from consumer.topology import Topology
from published import keys, versions
from recommender.offline.demo import write_demo_export

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parent / "slow_worker.py"
FIT_SCRIPT = Path(__file__).resolve().parent / "fit_worker.py"


@pytest.fixture
def spawn(amqp_url, prefix, base_env, real_redis_url, tmp_path):
    """Start worker processes on the real RabbitMQ and Redis; all are killed at the end."""
    children: list[subprocess.Popen] = []

    def start(seconds: float, name: str, grace: float = 0.3, script: Path = SCRIPT,
              **extra: str) -> subprocess.Popen:
        env = {**base_env, **extra, "ML_BROKER_URL": amqp_url, "ML_BROKER_PREFIX": prefix,
               "ML_REDIS_URL": real_redis_url, "SLOW_TRAIN_SECONDS": str(seconds),
               "ML_WORKER_STOP_GRACE": str(grace),
               "TEST_LOCK_TTL": "1.5", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        child = subprocess.Popen([sys.executable, str(script)], env=env, stdout=log,
                                 stderr=subprocess.STDOUT)
        children.append(child)
        return child

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait(10)
    for log in sorted(tmp_path.glob("*.log")):  # shown by pytest only when the test failed
        print(f"==== {log.name}\n{log.read_text()}")


def publish_train(url: str, prefix: str, tenant: str, queue_type: str = "classic") -> Topology:
    topology = Topology(prefix, amqp=True, queue_type=queue_type)
    with Connection(url) as connection:
        send(connection, topology, events.make_event(events.TRAIN, tenant=tenant))
    return topology


def starts(client) -> list[str]:
    return [s.decode() for s in client.lrange("test:starts", 0, -1)]


def test_worker_killed_mid_training_leaves_the_message_to_another_worker(
        spawn, amqp_url, prefix, real_redis):
    topology = publish_train(amqp_url, prefix, "7")
    victim = spawn(30, "victim")
    wait_for(lambda: starts(real_redis), timeout=15)
    assert real_redis.get(keys.lock("7")) is not None  # it expires after the kill, unreleased
    victim.send_signal(signal.SIGKILL)
    victim.wait(5)
    survivor = spawn(0.5, "survivor")
    wait_for(lambda: real_redis.get("test:trained:7") is not None, timeout=20)
    with Connection(amqp_url) as connection:
        wait_for(lambda: queue_depth(connection, topology.events_queue) == 0)
    survivor.send_signal(signal.SIGTERM)
    assert survivor.wait(10) == 0
    assert int(real_redis.get("test:trained:7")) == 1
    pids = {entry.split(":")[1] for entry in starts(real_redis)}
    assert pids == {str(victim.pid), str(survivor.pid)}


def test_sigterm_mid_training_hands_the_message_back_and_exits_cleanly(
        spawn, amqp_url, prefix, real_redis):
    topology = publish_train(amqp_url, prefix, "8")
    stopping = spawn(30, "stopping")
    wait_for(lambda: starts(real_redis), timeout=15)
    stopping.send_signal(signal.SIGTERM)
    assert stopping.wait(10) == 0
    assert real_redis.get(keys.lock("8")) is None  # freed at once, no TTL wait
    with Connection(amqp_url) as connection:
        assert queue_depth(connection, topology.events_queue) == 1
    successor = spawn(0.2, "successor")
    wait_for(lambda: real_redis.get("test:trained:8") is not None, timeout=20)
    successor.send_signal(signal.SIGTERM)
    assert successor.wait(10) == 0
    assert len(starts(real_redis)) == 2


def test_sigterm_mid_training_within_the_grace_finishes_acks_and_exits(
        spawn, amqp_url, prefix, real_redis):
    # Given a worker whose stop grace (ML_WORKER_STOP_GRACE) outlasts the training in hand,
    # which lasts longer than the 8 s the worker used to wait
    topology = publish_train(amqp_url, prefix, "9")
    stopping = spawn(9, "stopping", grace=60)
    wait_for(lambda: starts(real_redis), timeout=15)
    # When it is told to stop (a scale-down, a rollout) as the training starts
    stopping.send_signal(signal.SIGTERM)
    # Then it finishes the training, acks the event and exits within the grace
    assert stopping.wait(20) == 0
    assert int(real_redis.get("test:trained:9")) == 1 and len(starts(real_redis)) == 1
    with Connection(amqp_url) as connection:
        assert queue_depth(connection, topology.events_queue) == 0
    assert real_redis.get(keys.lock("9")) is None


def validation_epochs(log: Path) -> int:
    """The validation epochs a worker's log (ML_LOG_LEVEL=DEBUG) says its fits ran."""
    return sum(1 for line in log.read_text().splitlines()
               if "on the validation split" in line and ": epoch " in line)


def test_sigterm_past_the_grace_checkpoints_the_fit_and_the_next_worker_resumes_it(
        spawn, amqp_url, prefix, real_redis, base_env, tmp_path):
    # Given a worker with no stop grace training a real (small) export
    exports = tmp_path / "export"
    write_demo_export(exports, tenants=1, users=400, items=100, interactions=8000, seed=5)
    topology = publish_train(amqp_url, prefix, "0")
    real = {"script": FIT_SCRIPT, "ML_EXPORT_DIR": str(exports), "ML_LOG_LEVEL": "DEBUG",
            "ML_NUM_THREADS": "1"}
    stopping = spawn(0, "stopping", grace=0, **real)
    wait_for(lambda: validation_epochs(tmp_path / "stopping.log") >= 2, timeout=60)
    # When it is told to stop mid-fit
    stopping.send_signal(signal.SIGTERM)
    # Then the fit stops at an epoch boundary, writes its checkpoint, and the worker exits
    # with the event handed back
    assert stopping.wait(30) == 0
    done = validation_epochs(tmp_path / "stopping.log")
    checkpoint = Path(base_env["ML_MODELS_DIR"]) / "tenant_0" / "checkpoint.npz"
    assert checkpoint.exists() and real_redis.get(keys.lock("0")) is None
    with Connection(amqp_url) as connection:
        assert queue_depth(connection, topology.events_queue) == 1
    # And the next worker resumes from it: it runs only the epochs left, publishes, acks
    successor = spawn(0, "successor", **real)
    wait_for(lambda: "acked" in (tmp_path / "successor.log").read_text(), timeout=90)
    successor.send_signal(signal.SIGTERM)
    assert successor.wait(30) == 0
    with Connection(amqp_url) as connection:
        assert queue_depth(connection, topology.events_queue) == 0
    meta = versions.current_meta(real_redis, "0")
    log = (tmp_path / "successor.log").read_text()
    assert f"{done} epoch(s) already done" in log
    resumed = validation_epochs(tmp_path / "successor.log")
    # Nothing lost: the epochs of both workers are the published fit's validation epochs
    assert done + resumed == int(meta["epochs_trained"]) - int(meta["epochs"])
    assert resumed < done + resumed and not checkpoint.exists()
    print(f"epochs saved by the checkpoint: {done} of {done + resumed}")


@pytest.mark.parametrize("queue_type", ["classic", "quorum"])
def test_a_message_that_kills_every_worker_is_dead_lettered_after_max_deliveries(
        spawn, amqp_url, prefix, real_redis, queue_type):
    # Given ML_MAX_DELIVERIES=2 and a train event whose handling kills the worker: each worker
    # is SIGKILLed as soon as it starts on it (quorum queues: RabbitMQ counts the deliveries;
    # classic queues: the workers count redeliveries in Redis)
    env = {"ML_MAX_DELIVERIES": "2", "ML_BROKER_QUEUE_TYPE": queue_type}
    topology = publish_train(amqp_url, prefix, "9", queue_type)
    for delivery in (1, 2):
        victim = spawn(30, f"victim{delivery}", **env)
        wait_for(lambda n=delivery: len(starts(real_redis)) == n, timeout=20)
        victim.send_signal(signal.SIGKILL)
        victim.wait(5)
    # When the next worker is given the message a third time
    successor = spawn(0.2, "successor", **env)
    with Connection(amqp_url) as connection:
        wait_for(lambda: queue_depth(connection, topology.dead_queue) == 1, timeout=20)
        dead = drain(connection, topology.dead_queue)
        # Then it is dead-lettered, unhandled, with the reason; and the worker carries on
        publish_train(amqp_url, prefix, "10", queue_type)
        wait_for(lambda: real_redis.get("test:trained:10") is not None, timeout=20)
        assert queue_depth(connection, topology.events_queue) == 0
    successor.send_signal(signal.SIGTERM)
    assert successor.wait(10) == 0
    reason = dead[0].headers[DEAD_REASON_HEADER]
    assert "2 deliveries ended without an ack" in reason and "ML_MAX_DELIVERIES=2" in reason
    assert [s.split(":")[0] for s in starts(real_redis)] == ["9", "9", "10"]
    assert real_redis.get("test:trained:9") is None
