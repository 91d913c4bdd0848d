"""The retrain timer's time of day and spread (runtime.schedule, consumer.scheduler): every
tenant's run lies in [at, at + spread) of its period, the same on every worker, and the tenants
spread over the window; bad values stop the start with one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.scheduler import SCHEDULED_HEADER, Scheduler
from published import keys
from runtime.config import from_env
from runtime.errors import ConfigError
from runtime.schedule import DAY, Schedule
from tests.conftest import ROOT


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    period = draw(st.integers(1, 525600)) * 60  # ML_RECOMMENDATION_RETRAIN_FREQ's range
    at = draw(st.integers(0, 24 * 60 - 1)) * 60
    spread = draw(st.integers(0, period - 1))
    return Schedule(period, at, spread)


tenants = st.from_regex(r"[0-9]{1,12}", fullmatch=True)
moments = st.floats(0, 4e9, allow_nan=False)


@settings(max_examples=300)
@given(schedules(), tenants, moments)
def test_every_next_run_lies_within_at_and_at_plus_spread_of_its_period(schedule, tenant, now):
    run = schedule.next_run(tenant, now)
    start = schedule.period_start(run)
    assert now < run <= now + schedule.period
    assert (start - schedule.at) % schedule.period == 0  # periods start at ML_RETRAIN_AT
    assert start <= run < start + max(schedule.spread, 1)
    # Deterministic: another worker (another Schedule object) computes the same time.
    same = Schedule(schedule.period, schedule.at, schedule.spread)
    assert same.next_run(tenant, now) == run


@settings(max_examples=100)
@given(schedules(), moments)
def test_daily_periods_start_at_the_time_of_day_in_utc(schedule, now):
    daily = Schedule(DAY, schedule.at, 0)
    assert daily.period_start(now) % DAY == schedule.at


@given(st.integers(4, 86399))
def test_tenants_spread_over_the_whole_window(spread):
    schedule = Schedule(DAY, 9000, spread)
    offsets = [schedule.offset(str(tenant)) for tenant in range(400)]
    quarters = [0, 0, 0, 0]
    for offset in offsets:
        quarters[offset * 4 // spread] += 1
    assert min(quarters) >= 60  # 100 each on average


def test_without_spread_every_tenant_runs_at_the_period_start():
    schedule = Schedule(1440 * 60)  # the defaults: the original's midnight UTC
    assert {schedule.next_run(str(t), 1_700_000_123) for t in range(50)} == {1_700_006_400}


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_two_spreading_schedulers_train_each_tenant_once_per_period_in_its_window(fake_redis):
    fake_redis.sadd(keys.TENANTS, *[str(t) for t in range(30)])
    schedule = Schedule(3600, 600, 1800)  # hourly at :10, over 30 minutes
    clock = Clock(3600 * 1000 + 700.0)
    published: list = []
    workers = [Scheduler(fake_redis, lambda e, h: published.append((e, h)), schedule, clock)
               for _ in range(2)]
    assert not any([w.start() for w in workers])
    while clock.now < 3600 * 1003:  # two more periods, each worker looking every 10 s
        clock.now += 10
        for worker in workers:
            worker.tick()
    assert {event.type for event, _ in published} == {"train"}
    runs = [(event.fields["tenant"], headers[SCHEDULED_HEADER]) for event, headers in published]
    assert len(runs) == len(set(runs))  # never twice
    for tenant, when in runs:
        start = schedule.period_start(when)
        assert start + 0 <= when < start + 1800 and when == start + schedule.offset(tenant)
    # Every tenant in each of the two periods that began after the workers started; in the
    # period they started in, those whose time had not come yet.
    for period in (3600 * 1001 + 600, 3600 * 1002 + 600):
        assert {t for t, when in runs if schedule.period_start(when) == period} == {
            str(t) for t in range(30)}
    assert {t for t, when in runs if when < 3600 * 1001} == {
        str(t) for t in range(30) if schedule.offset(str(t)) > 100}


@pytest.mark.parametrize("name, value, expected", [
    ("ML_RETRAIN_AT", "25:00", "ML_RETRAIN_AT='25:00': expected a time of day HH:MM in UTC"),
    ("ML_RETRAIN_AT", "2.30", "ML_RETRAIN_AT='2.30': expected a time of day HH:MM in UTC"),
    ("ML_RETRAIN_SPREAD", "3 hours", "ML_RETRAIN_SPREAD='3 hours': expected a duration such as "
                                     "45m or 3h (s, m or h), shorter than the retrain period of "
                                     "1440 minutes"),
    ("ML_RETRAIN_SPREAD", "24h", "ML_RETRAIN_SPREAD='24h': expected a duration"),
])
def test_bad_schedule_values_name_the_variable_and_what_is_accepted(base_env, name, value,
                                                                    expected):
    with pytest.raises(ConfigError) as refused:
        from_env({**base_env, name: value})
    assert str(refused.value).startswith(expected) and "\n" not in str(refused.value)


def test_schedule_values_are_read_with_the_original_frequency(base_env):
    settings = from_env({**base_env, "ML_RECOMMENDATION_RETRAIN_FREQ": "720",
                         "ML_RETRAIN_AT": "02:30", "ML_RETRAIN_SPREAD": "3h"})
    assert settings.schedule == Schedule(720 * 60, 2 * 3600 + 30 * 60, 3 * 3600)
    assert from_env(base_env).schedule == Schedule(1440 * 60, 0, 0)
    assert from_env({**base_env, "ML_RETRAIN_SPREAD": "90m"}).retrain_spread_seconds == 5400


def test_a_worker_with_a_bad_schedule_exits_2_with_one_line(base_env):
    env = {**base_env, "ML_RECOMMENDATION_RETRAIN_FREQ": "60", "ML_RETRAIN_SPREAD": "2h",
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "consumer"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "configuration error: ML_RETRAIN_SPREAD='2h': expected a duration such as 45m or 3h "
        "(s, m or h), shorter than the retrain period of 60 minutes "
        "(ML_RECOMMENDATION_RETRAIN_FREQ)"]


def test_without_spread_one_export_ready_goes_out_at_the_time_of_day(fake_redis):
    fake_redis.sadd(keys.TENANTS, "0")
    clock = Clock(DAY * 20000 + 100.0)
    published: list = []
    worker = Scheduler(fake_redis, lambda e, h: published.append((e, h)), Schedule(DAY, 9000),
                       clock)
    assert not worker.start()
    clock.now = DAY * 20000 + 8999
    assert not worker.tick()
    clock.now = DAY * 20000 + 9000  # 02:30 UTC
    assert worker.tick()
    assert [(e.type, h) for e, h in published] == [
        ("export-ready", {SCHEDULED_HEADER: DAY * 20000 + 9000})]
