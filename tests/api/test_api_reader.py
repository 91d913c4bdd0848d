"""Caching and Redis round trips: the pointer for at most a second, data per current version."""

from __future__ import annotations

import fakeredis
import pytest
from api_client import Api
from publish_fixture import add_recent_events, publish_tiny_model

from api.reader import Reader
from published import keys


class CountingRedis(fakeredis.FakeRedis):
    """Counts round trips: single commands and whole pipelines."""

    commands: list[str]

    def execute_command(self, *args, **options):
        self.commands.append(str(args[0]))
        return super().execute_command(*args, **options)

    def pipeline(self, *args, **kwargs):
        self.commands.append("PIPELINE")
        return super().pipeline(*args, **kwargs)


@pytest.fixture
def counting() -> CountingRedis:
    client = CountingRedis(server=fakeredis.FakeServer())
    client.commands = []
    return client


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pointer_is_cached_for_at_most_the_ttl_and_old_data_is_dropped(fake_redis):
    clock = Clock()
    reader = Reader(lambda: fake_redis, pointer_ttl=1.0, clock=clock)
    first = publish_tiny_model(fake_redis)
    old = reader.version("0")
    assert old.version == first and reader.model(old) is not None
    second = publish_tiny_model(fake_redis)
    clock.now += 0.9
    assert reader.version("0") is old  # within the second: the cached pointer
    clock.now += 0.2
    new = reader.version("0")
    assert new.version == second and new is not old
    # Nothing in the reader holds the replaced version any more.
    assert all(entry[1] is not old for entry in reader._versions.values())
    clock.now += 5
    assert reader.version("0") is new  # same version: meta and arrays kept


def test_readiness_shows_the_first_publish_at_once_and_caches_only_a_yes(fake_redis):
    clock = Clock()
    reader = Reader(lambda: fake_redis, pointer_ttl=1.0, clock=clock)
    # Given a reader that just found nothing published
    assert reader.any_published() is False
    # When a tenant is published a moment later, within the pointer's TTL
    publish_tiny_model(fake_redis)
    clock.now += 0.1
    # Then it is seen at once, and the yes is cached for the TTL
    assert reader.any_published() is True
    fake_redis.delete(keys.TENANTS)
    clock.now += 0.5
    assert reader.any_published() is True
    clock.now += 0.6
    assert reader.any_published() is False


def test_hot_path_is_one_round_trip(settings, counting):
    api = Api(settings, counting, pointer_ttl=60.0)
    publish_tiny_model(counting)
    api.user_items(user=1)  # warms the pointer cache
    api.similar_items("engage_article1")
    counting.commands.clear()
    assert api.user_items(user=1).json["success"] is True
    assert counting.commands == ["HGET"]
    counting.commands.clear()
    assert api.similar_items("engage_article7").json["success"] is True  # with the retry
    assert counting.commands == ["HMGET"]


def test_cold_paths_cost_two_round_trips_once_the_model_is_loaded(settings, counting):
    api = Api(settings, counting, pointer_ttl=60.0)
    publish_tiny_model(counting)
    add_recent_events(counting, "0", 777, [("engage_article1", 1)])
    api.user_items(user=777)  # loads the pointer, meta, popularity and model arrays
    counting.commands.clear()
    assert api.user_items(user=777, item_type="engage_article").json["success"] is True
    assert counting.commands == ["HGET", "LRANGE"]
    counting.commands.clear()
    assert api.user_items(user=778).json["success"] is True  # popularity
    assert counting.commands == ["HGET", "LRANGE"]


def test_unknown_tenants_do_not_grow_the_cache_without_bound(fake_redis, monkeypatch):
    monkeypatch.setattr("api.reader.MAX_CACHED_TENANTS", 10)
    reader = Reader(lambda: fake_redis, pointer_ttl=1.0)
    for tenant in range(100):
        reader.version(str(tenant))
    assert len(reader._versions) <= 10
