"""Shared fixtures: a fresh fakeredis per unit test, the real services for integration tests.

Integration tests skip when a service is absent on this machine, except under CI (``CI`` set),
where a missing service is a failure: CI must run them.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import fakeredis
import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
OULAD_DIR = SHARED / "data" / "oulad"

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# Each developer can pick a database so parallel runs on one machine do not flush each other.
REDIS_DB = int(os.environ.get("ML_TEST_REDIS_DB", "15"))
RABBITMQ_URL = os.environ.get("ML_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def service_missing(what: str) -> None:
    """Skip locally, fail in CI: integration tests must really run there."""
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI but is not reachable")
    pytest.skip(f"{what} not reachable")


@pytest.fixture
def fake_redis() -> fakeredis.FakeRedis:
    """A client on a brand-new fake server: nothing leaks between tests."""
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def real_redis() -> redis.Redis:
    """The real Redis on 127.0.0.1:6379, database ML_TEST_REDIS_DB, emptied before the test."""
    if not _port_open(REDIS_HOST, REDIS_PORT):
        service_missing(f"Redis on {REDIS_HOST}:{REDIS_PORT}")
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def real_redis_url(real_redis: redis.Redis) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"


@pytest.fixture
def rabbitmq_url() -> str:
    if not _port_open("127.0.0.1", 5672):
        service_missing("RabbitMQ on 127.0.0.1:5672")
    return RABBITMQ_URL


@pytest.fixture(scope="session")
def oulad_dir() -> Path:
    if not (OULAD_DIR / "vle.csv").exists():
        pytest.skip("../shared/data/oulad is absent")
    return OULAD_DIR


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    """A complete, valid environment for runtime.config.from_env, isolated in tmp_path."""
    return {
        "ML_TOTARA_URL": "http://127.0.0.1:9",
        "ML_TOTARA_KEY": "test-shared-secret-0123456789",
        "ML_MODELS_DIR": str(tmp_path / "models"),
        "ML_LOGS_DIR": str(tmp_path / "logs"),
        "ML_EMBEDDED_DIR": str(tmp_path / "redis"),
        "ML_NUM_THREADS": "2",
    }
