"""Publishing is atomic, monotonic and cleans up after itself."""

import threading
import time

import numpy as np
import pytest

from published import keys, packing, versions


def _write_version(client, tenant: str, marker: float, n_users: int = 50,
                   version: str | None = None) -> versions.VersionWriter:
    writer = versions.VersionWriter(client, tenant, version)
    blob = packing.pack([(np.arange(1, 6), np.full(5, marker))] * 5)
    writer.write_popular(blob)
    writer.write_users((uid, blob) for uid in range(n_users))
    return writer


def test_readers_see_nothing_until_commit_then_the_whole_version(fake_redis):
    writer = _write_version(fake_redis, "3", 1.0)
    assert versions.current_version(fake_redis, "3") is None
    writer.commit({"status": "trained"})
    version = versions.current_version(fake_redis, "3")
    assert version == writer.version
    assert fake_redis.sismember(keys.TENANTS, "3")
    assert versions.current_meta(fake_redis, "3")["status"] == "trained"
    for uid in range(50):
        assert fake_redis.hexists(keys.user_bucket("3", version, uid), str(uid))


def test_an_older_run_finishing_late_does_not_overwrite_a_newer_version(fake_redis):
    # Given two runs of one tenant, the older started first but finishing last
    older = _write_version(fake_redis, "0", 1.0, version=versions.new_version(now=1000))
    newer = _write_version(fake_redis, "0", 2.0, version=versions.new_version(now=2000))
    newer.commit({"status": "trained"})
    # When the older one commits, it is refused and its keys are gone
    with pytest.raises(versions.StaleVersionError):
        older.commit({"status": "trained"})
    assert versions.current_version(fake_redis, "0") == newer.version
    assert not fake_redis.exists(*keys.version_keys("0", older.version))


def test_replaced_versions_are_deleted_after_the_grace_period_only(fake_redis):
    first = _write_version(fake_redis, "0", 1.0)
    first.commit({"status": "trained"})
    second = _write_version(fake_redis, "0", 2.0)
    second.commit({"status": "trained"})
    assert versions.collect_garbage(fake_redis, "0", grace_seconds=60) == []
    assert fake_redis.exists(keys.meta("0", first.version))
    later = time.time() + 61
    assert versions.collect_garbage(fake_redis, "0", grace_seconds=60, now=later) == [first.version]
    assert not fake_redis.exists(*keys.version_keys("0", first.version))
    assert fake_redis.exists(keys.meta("0", second.version))


def test_a_partial_version_left_by_a_dead_run_is_collected_and_cannot_be_published(fake_redis):
    # Given a run that wrote half a version and stopped touching it
    dead = _write_version(fake_redis, "0", 1.0)
    assert versions.collect_garbage(fake_redis, "0", 60) == []  # still fresh: maybe alive
    idle = time.time() + versions.ORPHAN_IDLE_SECONDS + 1
    assert versions.collect_garbage(fake_redis, "0", 60, now=idle) == [dead.version]
    assert not fake_redis.exists(*keys.version_keys("0", dead.version))
    # Then if that run was only slow, its commit is refused rather than publishing holes
    with pytest.raises(versions.StaleVersionError):
        dead.commit({"status": "trained"})
    assert versions.current_version(fake_redis, "0") is None


def test_a_run_holding_the_tenant_lock_collects_a_partial_version_at_once(fake_redis):
    # Given a committed version and a partial one whose writer was killed a moment ago
    live = _write_version(fake_redis, "0", 1.0)
    live.commit({"status": "trained"})
    dead = _write_version(fake_redis, "0", 2.0)
    # When a run that holds the lock (no other writer can be alive) collects
    assert versions.collect_garbage(fake_redis, "0", 60, orphan_idle_seconds=0) == [dead.version]
    # Then the partial version is gone and the published one is untouched
    assert not fake_redis.exists(*keys.version_keys("0", dead.version))
    assert versions.current_version(fake_redis, "0") == live.version
    assert fake_redis.exists(keys.meta("0", live.version))


def test_an_error_while_writing_leaves_the_published_version_untouched(fake_redis):
    from recommender.publish.listsfile import Lists
    from recommender.publish.release import publish
    from tests.factories import saved_model

    good = _write_version(fake_redis, "0", 1.0)
    good.commit({"status": "trained"})

    def users():
        yield [(1, b"\x01\x00")]
        raise KeyError("user_ids")  # a list that cannot be made: fails half-way

    broken = Lists(5, b"\x01\x00", users(), [])
    with pytest.raises(KeyError):
        publish(fake_redis, "0", versions.new_version(), saved_model(), broken,
                {"status": "trained"})
    assert versions.current_version(fake_redis, "0") == good.version
    assert fake_redis.zcard(keys.versions("0")) == 1


@pytest.mark.integration
def test_a_reader_during_repeated_publishes_only_ever_sees_whole_versions(real_redis):
    # Given a published version and a reader that follows the pointer as the API does
    n_users = 300
    _write_version(real_redis, "0", 0.0, n_users).commit({"status": "trained", "marker": 0})
    stop = threading.Event()
    problems: list[str] = []
    reads = [0]

    def reader() -> None:
        while not stop.is_set():
            version = versions.current_version(real_redis, "0")
            marker = float(real_redis.hget(keys.meta("0", version), "marker"))
            for uid in (0, n_users // 2, n_users - 1):
                blob = real_redis.hget(keys.user_bucket("0", version, uid), str(uid))
                if blob is None:
                    problems.append(f"user {uid} missing from {version}")
                elif float(packing.unpack(blob, 2)[1][0]) != marker:
                    problems.append(f"user {uid} of {version} has another version's list")
            reads[0] += 1

    thread = threading.Thread(target=reader)
    thread.start()
    # When five new versions are published (and old ones collected) while it reads
    for marker in range(1, 6):
        writer = _write_version(real_redis, "0", float(marker), n_users)
        writer.commit({"status": "trained", "marker": marker})
        versions.collect_garbage(real_redis, "0", grace_seconds=1)
        time.sleep(0.3)
    stop.set()
    thread.join()
    # Then every read found whole data of the version it followed
    assert reads[0] > 10
    assert problems == []
