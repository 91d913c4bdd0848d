"""Fixtures for the API tests: settings, a Falcon test client on fakeredis, signed requests."""

from __future__ import annotations

from collections.abc import Callable

import fakeredis
import pytest
from api_client import KEY, Api

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
