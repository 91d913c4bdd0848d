"""Fixtures of the fault-injection suite: private servers to kill, a small export, process logs.

The shared Redis and RabbitMQ are never stopped: tests that kill a server start their own copy
(tests/faults/servers.py). The shared RabbitMQ is only used, with a unique prefix, by tests that
do not restart the broker.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import RabbitNode, RedisServer, stop_process  # noqa: E402

from consumer.topology import Topology  # noqa: E402
from recommender.offline import demo  # noqa: E402

KEY = "fault-suite-shared-secret-0123"
SPARE_URL = "http://127.0.0.1:9"  # nothing listens there: Totara is never called by default


@pytest.fixture(scope="session")
def fault_export(tmp_path_factory) -> Path:
    """Two tenants, small enough that a training takes about a second."""
    folder = tmp_path_factory.mktemp("fault-export")
    demo.write_demo_export(folder, tenants=2, users=150, items=60, interactions=3000, seed=3)
    return folder


@pytest.fixture
def private_redis(tmp_path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def rabbit_node(tmp_path_factory) -> Iterator[RabbitNode]:
    """A RabbitMQ node of the module's own, for tests that kill the broker."""
    if not RabbitNode.available():
        if os.environ.get("CI"):
            pytest.fail("rabbitmq-server is required in CI for the broker fault tests")
        pytest.skip("rabbitmq-server is not installed")
    node = RabbitNode(tmp_path_factory.mktemp("rabbit")).start()
    yield node
    node.kill()


@pytest.fixture
def shared_broker(rabbitmq_url) -> Iterator[tuple[str, str]]:
    """(url, prefix) on the shared RabbitMQ; this test's exchange and queues go afterwards."""
    prefix = f"test_faults_{uuid.uuid4().hex[:10]}"
    yield rabbitmq_url, prefix
    with Connection(rabbitmq_url) as connection, connection.channel() as channel:
        Topology(prefix, amqp=True).delete(channel)


@pytest.fixture
def fault_env(tmp_path, fault_export) -> dict[str, str]:
    """ML_* for the service's processes, everything under tmp_path; tests add Redis and broker."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "ML_TOTARA_URL": SPARE_URL,
        "ML_TOTARA_KEY": KEY,
        "ML_MODELS_DIR": str(tmp_path / "models"),
        "ML_LOGS_DIR": str(tmp_path / "logs"),
        "ML_EMBEDDED_DIR": str(tmp_path / "embedded"),
        "ML_EXPORT_DIR": str(fault_export),
        "ML_NUM_THREADS": "1",
        "ML_TOP_K": "20",
        "ML_LOG_LEVEL": "INFO",
        "ML_METRICS_PORT": "0",
    }


@pytest.fixture
def processes(tmp_path) -> Iterator[list[subprocess.Popen]]:
    """Processes a test starts; killed afterwards, their logs printed (shown on failure)."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        stop_process(process, timeout=10)
    for log in sorted(tmp_path.glob("*.log")):
        print(f"==== {log.name}\n{log.read_text()[-6000:]}")


# Measurements the fault tests report (latency under load...), printed after the run whatever
# its outcome, so CI's log keeps them.
MEASUREMENTS: list[str] = []


@pytest.fixture
def report() -> list[str]:
    return MEASUREMENTS


def pytest_terminal_summary(terminalreporter) -> None:
    if MEASUREMENTS:
        terminalreporter.section("fault suite measurements")
        for line in MEASUREMENTS:
            terminalreporter.write_line(line)
