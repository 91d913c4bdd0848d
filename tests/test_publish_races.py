"""Writers racing on one tenant against the real Redis: garbage collection beside a switch, a
switch after the lock was lost, ``restore`` beside a training. Each race is run for real (threads
on separate connections), bounded to a few seconds."""

from __future__ import annotations

import threading
import time

import pytest
import redis

from consumer import jobs
from published import keys, versions
from published.locks import TenantLock
from published.runs import RunStatus
from recommender import pipeline
from recommender.model.params import TrainParams
from recommender.offline import demo
from recommender.outcome import Progress, TenantResult
from recommender.publish import modelfile, release
from recommender.service import TrainingService
from runtime import config, errors
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ROUNDS = 150
FAST = TrainParams(components=8, max_epochs=3, patience=1)
NOT_TRAINED = {"status": "not_trained", "algorithm": "mf", "message": "too small"}


def _client(real_redis: redis.Redis) -> redis.Redis:
    """A second connection to the same database, so two threads really interleave."""
    return redis.Redis(connection_pool=redis.ConnectionPool(**real_redis.connection_pool
                                                            .connection_kwargs))


def _live_is_whole(client: redis.Redis, tenant: str) -> str | None:
    """What is wrong with the live version, or None when it is registered and has its meta."""
    current = versions.current_version(client, tenant)
    if current is None:
        return "no current version"
    if client.zscore(keys.versions(tenant), current) is None:
        return f"live version {current} was unregistered"
    if not client.exists(keys.meta(tenant, current)):
        return f"live version {current} was deleted"
    return None


def test_garbage_collection_racing_switches_never_deletes_the_live_version(real_redis):
    # Given a published version, and in each round a new whole version about to be switched in
    gc_client = _client(real_redis)
    first = versions.VersionWriter(real_redis, "0")
    first.commit(NOT_TRAINED)
    problems: list[str] = []
    switched = 0
    for _ in range(ROUNDS):
        writer = versions.VersionWriter(real_redis, "0")
        previous = versions.current_version(real_redis, "0")
        start = threading.Barrier(2, timeout=5)

        def collect(start: threading.Barrier) -> None:
            start.wait()
            # As a worker starting a run does: it holds the lock, so partial versions go at once
            versions.collect_garbage(gc_client, "0", grace_seconds=60, orphan_idle_seconds=0)

        collector = threading.Thread(target=collect, args=(start,))
        collector.start()
        # When the switch and the collection run at the same moment
        start.wait()
        try:
            writer.commit(NOT_TRAINED)
            switched += 1
        except errors.StaleVersionError:
            pass  # collected first: refused, the previous version stays live
        collector.join(5)
        # Then the live version is whole, and the one it replaced is kept for its grace
        problem = _live_is_whole(real_redis, "0")
        if problem:
            problems.append(problem)
            break
        if versions.current_version(real_redis, "0") != previous and not real_redis.exists(
                keys.meta("0", previous)):
            problems.append(f"{previous} deleted inside its grace")
            break
    gc_client.close()
    assert problems == []
    assert switched > 0


def _stall(lock: TenantLock, released: threading.Event) -> None:
    """Renewals of ``lock`` hang, as on a stalled connection, until ``released`` is set."""
    def stalled(*args: object, **kwargs: object) -> int:
        released.wait(5)
        raise redis.ConnectionError("stalled connection")
    lock._renew = stalled  # type: ignore[assignment]


def test_a_switch_after_the_lock_expired_and_was_taken_is_refused(real_redis):
    # Given a live version, and a worker whose lock renewals stall during a long write
    live = versions.VersionWriter(real_redis, "1")
    live.commit(NOT_TRAINED)
    lock = TenantLock(real_redis, "1", ttl=0.3, owner="slow")
    assert lock.acquire()
    released = threading.Event()
    _stall(lock, released)
    with lock.renewing():
        writer = versions.VersionWriter(real_redis, "1")
        writer.write_popular(b"x" * 100)
        # When the lock expires and another worker takes it before the switch
        wait_for(lambda: real_redis.get(keys.lock("1")) is None, 3, "the lock to expire")
        thief = TenantLock(real_redis, "1", ttl=10, owner="thief")
        assert thief.acquire()
        # Then the switch is refused, saying why, and nothing of the new version is left
        with pytest.raises(errors.LockLostError) as refused:
            writer.commit(NOT_TRAINED)
        released.set()
    assert "lock" in str(refused.value)
    assert versions.current_version(real_redis, "1") == live.version
    assert not real_redis.exists(keys.popular("1", writer.version))
    assert real_redis.get(keys.lock("1")) == thief.token.encode()  # not released by the loser


def _train_fn(client_holder: dict, stolen: threading.Event | None = None):
    def train(settings, client, tenant, *, algorithm=None, force=False) -> TenantResult:
        version = versions.new_version()
        client_holder["version"] = version
        if stolen is not None:
            client.set(keys.lock(tenant), "thief", px=10_000)  # expired and taken meanwhile
            stolen.set()
        release.publish(client, tenant, version, None, None, dict(NOT_TRAINED))
        return TenantResult(tenant, RunStatus.PUBLISHED, "trained", version=version)
    return train


def test_a_training_whose_lock_was_taken_reports_it_and_leaves_the_live_version(
        real_redis, base_env):
    # Given a live version and a training whose lock is taken by another worker mid-run
    settings = config.from_env(base_env)
    live = versions.VersionWriter(real_redis, "2")
    live.commit(NOT_TRAINED)
    seen: dict = {}
    service = TrainingService(settings, real_redis, lock_ttl=5,
                              train_fn=_train_fn(seen, threading.Event()))
    # When it reaches its switch
    with pytest.raises(errors.LockLostError) as lost:
        service.train("2")
    # Then the error says the lock was lost, and the live version is untouched
    assert "lock" in str(lost.value) and "2" in str(lost.value)
    assert versions.current_version(real_redis, "2") == live.version
    assert real_redis.get(keys.lock("2")) == b"thief"


def _save_model(settings: config.Settings, tenant: str) -> str:
    version = versions.new_version()
    modelfile.save(settings.models_dir, tenant, version, None,
                   {**NOT_TRAINED, "trained_at": time.time()})
    modelfile.mark_current(settings.models_dir, tenant, version)
    return version


def test_restore_beside_a_training_neither_rolls_back_nor_makes_it_stale(real_redis, base_env):
    # Given a tenant whose saved model is live, and a training of it under way
    settings = config.from_env(base_env)
    saved = _save_model(settings, "3")
    assert TrainingService(settings, real_redis).restore(["3"])[0].status == "published"
    seen: dict = {}
    restored: list[TenantResult] = []
    named = threading.Event()
    proceed = threading.Event()

    def train(settings, client, tenant, *, algorithm=None, force=False) -> TenantResult:
        version = versions.new_version()
        seen["version"] = version
        named.set()
        proceed.wait(5)
        try:
            release.publish(client, tenant, version, None, None, dict(NOT_TRAINED))
        except errors.StaleVersionError as exc:
            return TenantResult(tenant, RunStatus.STALE, str(exc))
        return TenantResult(tenant, RunStatus.PUBLISHED, "trained", version=version)

    trainer = TrainingService(settings, _client(real_redis), lock_ttl=5, train_fn=train)
    training = threading.Thread(target=lambda: seen.update(result=trainer.train("3")))
    training.start()
    named.wait(5)
    # When an operator runs restore while it fits, and the training then publishes
    restorer = threading.Thread(
        target=lambda: restored.extend(TrainingService(settings, _client(real_redis))
                                       .restore(["3"])))
    restorer.start()
    restorer.join(5)
    proceed.set()
    training.join(5)
    # Then the training's version is live, and restore stepped aside
    assert seen["result"].status == "published", seen["result"].message
    assert versions.current_version(real_redis, "3") == seen["version"]
    assert [r.status for r in restored] in (["locked"], ["skipped"])
    # And a restore afterwards does not roll the tenant back to the saved model
    again = TrainingService(settings, real_redis).restore(["3"])
    assert [r.status for r in again] == ["skipped"]
    assert versions.current_version(real_redis, "3") == seen["version"] != saved


def test_restore_publishes_the_saved_version_under_its_own_id(real_redis, base_env):
    # Given a saved model and an empty Redis
    settings = config.from_env(base_env)
    saved = _save_model(settings, "4")
    # When it is restored, twice
    first = TrainingService(settings, real_redis).restore(["4"])
    second = TrainingService(settings, real_redis).restore(["4"])
    # Then it is live under its own version id, and the second restore changed nothing
    assert [(r.status, r.version) for r in first] == [("published", saved)]
    assert [r.status for r in second] == ["skipped"]
    assert versions.current_version(real_redis, "4") == saved
    assert real_redis.get(keys.lock("4")) is None


class _StealAtSave(Progress):
    """Another worker takes the lock while the fitted model is being saved."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def stage(self, tenant: str, name: str) -> None:
        if name.startswith("save"):  # the stage's name, then its description
            self.client.set(keys.lock(tenant), "thief", px=10_000)


def test_a_pipeline_run_that_lost_its_lock_records_lock_lost_and_is_retried(
        real_redis, base_env, tmp_path):
    # Given a live version of tenant 0 and a real training of a new export of it
    demo.write_demo_export(tmp_path / "export", tenants=1, users=60, items=30,
                           interactions=600, seed=4)
    settings = config.from_env({**base_env, "ML_EXPORT_DIR": str(tmp_path / "export")})
    live = versions.VersionWriter(real_redis, "0")
    live.commit(NOT_TRAINED)

    def train(settings, client, tenant, *, algorithm=None, force=False):
        return pipeline.train_tenant(settings, client, tenant, algorithm=algorithm, force=force,
                                     params=FAST, exclusive=True,
                                     progress=_StealAtSave(_client(real_redis)))

    # When its lock is taken by another worker before the switch
    service = TrainingService(settings, real_redis, lock_ttl=5, train_fn=train)
    with pytest.raises(errors.LockLostError) as lost:
        service.train("0")
    # Then the run is recorded as lock_lost, the worker would retry it, and the live version
    # is the one it was
    assert real_redis.hget(keys.last_run("0"), "status") == b"lock_lost"
    assert jobs.is_retryable(lost.value)
    assert versions.current_version(real_redis, "0") == live.version
    assert real_redis.zcard(keys.versions("0")) == 1


def test_a_lock_that_expired_while_nobody_took_it_is_taken_back_and_the_run_publishes(
        real_redis):
    # Given a run whose renewals were starved past the TTL (a fit holding the interpreter) and
    # whose lock nobody took meanwhile
    live = versions.VersionWriter(real_redis, "5")
    live.commit(NOT_TRAINED)
    lock = TenantLock(real_redis, "5", ttl=0.3)
    assert lock.acquire()
    with lock.renewing():
        writer = versions.VersionWriter(real_redis, "5")
        real_redis.delete(keys.lock("5"))  # expired
        # When the renewer runs again, then it takes the lock back, and the switch goes ahead
        wait_for(lambda: real_redis.get(keys.lock("5")) == lock.token.encode(), 3,
                 "the lock taken back")
        writer.commit(NOT_TRAINED)
    assert not lock.lost
    assert versions.current_version(real_redis, "5") == writer.version
