"""Fixtures of the consumer tests: settings, a memory broker per test, RabbitMQ clean-up."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection

sys.path.insert(0, str(Path(__file__).resolve().parent))

from workerkit import unique_prefix  # noqa: E402

from consumer.topology import Topology  # noqa: E402
from runtime.config import Settings, from_env  # noqa: E402


@pytest.fixture
def settings(base_env: dict[str, str]) -> Settings:
    return from_env(base_env)


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture
def memory_url(prefix: str) -> Iterator[str]:
    """kombu's in-process broker; state is global, so every test has its own names."""
    url = "memory://localhost/"
    yield url
    with Connection(url) as connection, connection.channel() as channel:
        Topology(prefix, amqp=False).delete(channel)


@pytest.fixture
def amqp_url(rabbitmq_url: str, prefix: str) -> Iterator[str]:
    """The real RabbitMQ, with this test's exchange and queues deleted afterwards."""
    yield rabbitmq_url
    with Connection(rabbitmq_url) as connection, connection.channel() as channel:
        Topology(prefix, amqp=True).delete(channel)
