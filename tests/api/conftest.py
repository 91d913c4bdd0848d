"""Fixtures for the API tests: settings, a Falcon test client on fakeredis, signed requests."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable

import fakeredis
import pytest
from api_client import KEY, Api

from runtime import logsetup
from runtime.config import Settings, from_env


@pytest.fixture
def settings(base_env: dict[str, str]) -> Settings:
    assert base_env["ML_TOTARA_KEY"] == KEY
    return from_env(base_env)


@pytest.fixture
def dev_settings(base_env: dict[str, str]) -> Settings:
    return from_env({**base_env, "ML_DEV": "1", "ML_BIND": "127.0.0.1:5000"})


@pytest.fixture
def make_api(settings: Settings, fake_redis: fakeredis.FakeRedis) -> Callable[..., Api]:
    def make(app_settings: Settings | None = None, redis_client: object = None,
             **options: object) -> Api:
        return Api(app_settings or settings, redis_client or fake_redis, **options)

    return make


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


@pytest.fixture
def log_lines():
    """Everything logged during the test, formatted by the service's handler."""
    made = []

    def capture(fmt: str = "text") -> io.StringIO:
        stream = io.StringIO()
        handler = logsetup.Handler(fmt, stream=stream)
        handler.setLevel(logging.DEBUG)
        logging.getLogger().addHandler(handler)
        made.append(handler)
        return stream

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    logsetup.register_secrets([KEY])
    yield capture
    for handler in made:
        root.removeHandler(handler)
    root.setLevel(level)
