"""A real worker process (``python tests/consumer/slow_worker.py``) whose trainer is a slow fake.

Used by the tests that kill or stop a worker mid-training. Configured by the usual ML_* variables
(ML_WORKER_STOP_GRACE: how long SIGTERM waits for the training) plus SLOW_TRAIN_SECONDS and
TEST_LOCK_TTL. Every training start is pushed on the Redis list
``test:starts`` and every finished training increments ``test:trained:<tenant>``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from consumer.app import load_settings, run_worker  # noqa: E402
from consumer.retry import RetryPolicy  # noqa: E402
from tests.consumer.workerkit import FakeResult  # noqa: E402


def slow_train(settings, client, tenant, *, algorithm=None, force=False):
    client.rpush("test:starts", f"{tenant}:{os.getpid()}")
    time.sleep(float(os.environ.get("SLOW_TRAIN_SECONDS", "2")))
    client.incr(f"test:trained:{tenant}")
    return FakeResult(tenant)


if __name__ == "__main__":
    policy = RetryPolicy(max_attempts=5, base_delay=0.2, max_delay=1, lock_wait_delay=0.2,
                         lock_wait_max=0.5, jitter=0)
    raise SystemExit(run_worker(load_settings(), train_fn=slow_train, policy=policy,
                                lock_ttl=float(os.environ.get("TEST_LOCK_TTL", "1.5")),
                                schedule_seconds=0))
