"""The per-tenant lock, the one-per-period scheduler and the retry policy, on fakeredis."""

from __future__ import annotations

import time

import pytest

from consumer.retry import HeldRetries, RetryPolicy, header_int
from consumer.scheduler import SCHEDULED_HEADER, Scheduler
from published import keys
from published.locks import LockRegistry, TenantLock

# -- lock ------------------------------------------------------------------------------------


def test_tenant_lock_is_exclusive_and_only_its_owner_releases_it(fake_redis):
    first = TenantLock(fake_redis, "3", ttl=10, owner="a")
    second = TenantLock(fake_redis, "3", ttl=10, owner="b")
    other_tenant = TenantLock(fake_redis, "4", ttl=10)
    assert first.acquire()
    assert not second.acquire()
    assert other_tenant.acquire()
    assert not second.release()  # not the owner: the lock stays
    assert first.holder().startswith("a:")
    assert first.release()
    assert second.acquire()


def test_tenant_lock_expires_when_its_owner_dies(fake_redis):
    dead = TenantLock(fake_redis, "3", ttl=0.1)
    assert dead.acquire()
    time.sleep(0.15)
    assert TenantLock(fake_redis, "3").acquire()
    assert not dead.renew() and dead.lost


def test_renewing_keeps_the_lock_beyond_its_ttl_and_releases_at_the_end(fake_redis):
    lock = TenantLock(fake_redis, "5", ttl=0.6)  # renewed every 0.2 s; slack for a busy CI
    assert lock.acquire()
    with lock.renewing():
        time.sleep(1.5)
        assert not TenantLock(fake_redis, "5").acquire()
    assert fake_redis.get(keys.lock("5")) is None


def test_lock_registry_frees_the_locks_of_an_abandoned_training(fake_redis):
    registry = LockRegistry()
    lock = TenantLock(fake_redis, "1", ttl=30)
    assert lock.acquire()
    registry.add(lock)
    assert registry.release_all() == 1
    assert fake_redis.get(keys.lock("1")) is None


# -- scheduler -------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def scheduler(client, clock, published, period=60):
    return Scheduler(client, lambda event, headers: published.append((event, headers)),
                     period, clock=clock)


def test_two_schedulers_publish_one_export_ready_per_period(fake_redis):
    fake_redis.sadd(keys.TENANTS, "0")
    clock = Clock(6000.0)
    published: list = []
    a, b = scheduler(fake_redis, clock, published), scheduler(fake_redis, clock, published)
    assert not a.start() and not b.start()
    for _ in range(10):  # ten periods, each scheduler looking several times per period
        for _ in range(4):
            clock.now += 15
            a.tick()
            b.tick()
    periods = [headers[SCHEDULED_HEADER] for _, headers in published]
    assert periods == [6060 + 60 * n for n in range(10)]
    assert all(event.type == "export-ready" for event, _ in published)


def test_a_scheduler_whose_clock_lags_does_not_publish_a_period_again(fake_redis):
    fake_redis.sadd(keys.TENANTS, "0")
    published: list = []
    ahead, behind = Clock(6010.0), Clock(6005.0)
    fast, slow = scheduler(fake_redis, ahead, published), scheduler(fake_redis, behind, published)
    assert not fast.start() and not slow.start()
    ahead.now, behind.now = 6061.0, 6059.0
    assert fast.tick()
    assert not slow.tick()
    behind.now = 6065.0  # the slow clock reaches the period the fast one published
    assert not slow.tick()
    assert [headers for _, headers in published] == [{SCHEDULED_HEADER: 6060}]


def test_first_start_without_any_model_publishes_once_across_workers(fake_redis):
    clock = Clock(6000.0)
    published: list = []
    starters = [scheduler(fake_redis, clock, published) for _ in range(5)]
    assert [s.start() for s in starters] == [True, False, False, False, False]
    assert len(published) == 1
    # Restarting within the same period does not train again.
    assert not scheduler(fake_redis, clock, published).start()


def test_start_with_published_models_waits_for_the_next_period(fake_redis):
    fake_redis.sadd(keys.TENANTS, "0")
    clock = Clock(6010.0)
    published: list = []
    worker = scheduler(fake_redis, clock, published)
    assert not worker.start()
    clock.now = 6059.0
    assert not worker.tick()
    clock.now = 6060.0
    assert worker.tick()
    assert int(fake_redis.get(keys.SCHEDULE_LEADER)) == 6060


def test_a_failed_publish_gives_the_period_back(fake_redis):
    fake_redis.sadd(keys.TENANTS, "0")
    clock = Clock(6000.0)

    def broken(event, headers):
        raise ConnectionError("broker gone")

    worker = Scheduler(fake_redis, broken, 60, clock=clock)
    worker.start()
    clock.now = 6070.0
    with pytest.raises(ConnectionError):
        worker.tick()
    assert int(fake_redis.get(keys.SCHEDULE_LEADER)) == 6000
    published: list = []
    assert scheduler(fake_redis, clock, published).tick()
    assert published[0][1] == {SCHEDULED_HEADER: 6060}


# -- retry -----------------------------------------------------------------------------------


def test_backoff_doubles_up_to_a_maximum_and_attempts_are_bounded():
    policy = RetryPolicy(max_attempts=5, base_delay=10, max_delay=60, jitter=0)
    assert [policy.delay(n) for n in range(1, 6)] == [10, 20, 40, 60, 60]
    assert not policy.exhausted(4) and policy.exhausted(5)
    jittered = RetryPolicy(base_delay=10, jitter=0.2)
    assert all(8 <= jittered.delay(1) <= 12 for _ in range(50))


def test_counter_headers_tolerate_garbage():
    assert header_int({"x-attempt": "3"}, "x-attempt") == 3
    assert header_int({"x-attempt": "three"}, "x-attempt") == 0
    assert header_int(None, "x-attempt") == 0
    assert header_int({"x-attempt": -4}, "x-attempt") == 0


def test_held_retries_come_out_when_due_in_order():
    held = HeldRetries()
    held.push(5.0, "b")
    held.push(1.0, "a")
    held.push(9.0, "c")
    assert held.pop_due(6.0) == ["a", "b"]
    assert held.remove_if(lambda item: item == "c") == ["c"]
    assert len(held) == 0
