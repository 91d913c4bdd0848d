"""consumer.recovery: a worker republishes the saved models that Redis lost, once across workers."""

from __future__ import annotations

import time

import fakeredis

from consumer.recovery import Recovery
from published import keys, versions
from published.locks import LockRegistry, TenantLock
from recommender.publish import modelfile
from recommender.service import restore_saved


def _save(settings, tenant: str, version: str) -> None:
    # A "not trained" model: no arrays, so the real restore publishes it in microseconds.
    meta = {"status": "not_trained", "algorithm": "mf", "message": "too small",
            "trained_at": 1700000000.0}
    modelfile.save(settings.models_dir, tenant, version, None, meta)
    modelfile.mark_current(settings.models_dir, tenant, version)


def _recovery(settings, client) -> Recovery:
    return Recovery(settings, client, LockRegistry(), interval=0.05, lock_ttl=2)


def test_nothing_saved_means_nothing_to_restore(settings, fake_redis):
    assert _recovery(settings, fake_redis).check_once() == []


def test_tenants_with_a_saved_model_and_no_pointer_are_republished(settings, fake_redis):
    # Given two saved tenants, of which Redis still has tenant 1's pointer
    _save(settings, "1", "1700000000000-00000001")
    _save(settings, "2", "1700000000000-00000002")
    fake_redis.set(keys.current("1"), "1700000000000-00000001")
    recovery = _recovery(settings, fake_redis)
    assert recovery.missing_tenants() == ["2"]
    # When the worker checks, then only tenant 2 is republished, as a new whole version
    assert recovery.check_once() == ["2"]
    meta = versions.current_meta(fake_redis, "2")
    assert meta["status"] == "not_trained" and meta["tenant"] == "2"
    assert fake_redis.sismember(keys.TENANTS, "2")
    assert fake_redis.get(keys.lock("2")) is None  # released afterwards
    # And a second check finds nothing to do
    assert recovery.check_once() == []


def test_a_tenant_locked_by_a_training_is_left_to_it(settings, fake_redis):
    _save(settings, "3", "1700000000000-00000003")
    training = TenantLock(fake_redis, "3", ttl=5)
    assert training.acquire()
    assert _recovery(settings, fake_redis).check_once() == []
    assert versions.current_version(fake_redis, "3") is None


def test_of_two_workers_noticing_the_loss_one_restores(settings):
    # Given two workers on one Redis whose first restore is slow enough to overlap the second
    server = fakeredis.FakeServer()
    first_client, second_client = (fakeredis.FakeRedis(server=server) for _ in range(2))
    _save(settings, "4", "1700000000000-00000004")
    calls: list[str] = []
    second = _recovery(settings, second_client)

    def slow_restore(s, client, tenants):
        calls.append("first")
        # While the first holds the lock, the second worker checks and must back off.
        assert second.check_once() == []
        return restore_saved(s, client, tenants)

    first = Recovery(settings, first_client, LockRegistry(), lock_ttl=2,
                     restore_fn=slow_restore)
    assert first.check_once() == ["4"]
    assert second.check_once() == []  # the pointer is back: nothing to do
    assert calls == ["first"]
    assert len(first_client.zrange(keys.versions("4"), 0, -1)) == 1


def test_the_background_thread_keeps_checking_through_a_redis_outage(settings):
    # Given a worker whose Redis refuses connections at first
    _save(settings, "5", "1700000000000-00000005")
    server = fakeredis.FakeServer()
    server.connected = False
    client = fakeredis.FakeRedis(server=server)
    recovery = _recovery(settings, client).start()
    try:
        time.sleep(0.2)
        assert recovery.restored == []
        # When Redis answers again, then the tenant is republished by the running thread
        server.connected = True
        deadline = time.monotonic() + 5
        while not recovery.restored and time.monotonic() < deadline:
            time.sleep(0.02)
        assert recovery.restored == ["5"]
    finally:
        recovery.stop()


def test_a_damaged_saved_model_is_reported_once_and_does_not_block_other_tenants(
        settings, fake_redis, caplog):
    # Given tenant 5 whose saved model file is damaged, and tenant 6 whose model is fine
    _save(settings, "5", "1700000000000-00000005")
    _save(settings, "6", "1700000000000-00000006")
    folder = modelfile.tenant_dir(settings.models_dir, "5")
    (folder / "1700000000000-00000005.json").write_text("{not json")
    recovery = _recovery(settings, fake_redis)
    # When the worker checks twice
    with caplog.at_level("WARNING", logger="consumer.recovery"):
        assert recovery.check_once() == ["6"]
        assert recovery.check_once() == []
    # Then tenant 6 was restored despite tenant 5, which was reported once, with its traceback
    reports = [r for r in caplog.records if "cannot be republished" in r.getMessage()]
    assert len(reports) == 1 and reports[0].exc_info is not None
    assert versions.current_version(fake_redis, "5") is None
    # And once a training saves a new model for tenant 5, it is tried again
    _save(settings, "5", "1700000000000-00000007")
    assert recovery.check_once() == ["5"]
