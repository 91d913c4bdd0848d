"""published.overview: what the health check, status page and metrics read per tenant."""

from published import keys, overview


def test_tenants_come_in_numeric_order_with_their_version_meta_and_last_run(fake_redis):
    for tenant in ("10", "2", "1"):
        fake_redis.sadd(keys.TENANTS, tenant)
    fake_redis.set(keys.current("2"), "v2")
    fake_redis.hset(keys.meta("2", "v2"), mapping={"status": "trained", "auc": "0.9"})
    fake_redis.hset(keys.last_run("10"), mapping={"status": "failed"})
    fake_redis.set(keys.SCHEDULE_LEADER, "1700000000")
    seen = overview.read(fake_redis, ["status", "auc"], ["status"], limit=2)
    assert seen.total == 3
    assert [s.tenant for s in seen.tenants] == ["1", "2"]  # limited, numeric order
    first, second = seen.tenants
    assert (first.version, first.meta, first.run) == (None, {"status": "", "auc": ""},
                                                      {"status": ""})
    assert (second.version, second.meta) == ("v2", {"status": "trained", "auc": "0.9"})
    assert seen.leader == "1700000000"


def test_nothing_published_reads_as_an_empty_overview(fake_redis):
    seen = overview.read(fake_redis, ["status"], ["status"], limit=10)
    assert (seen.total, seen.tenants, seen.leader) == (0, [], "")
