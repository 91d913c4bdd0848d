"""A real worker process for the fault tests: ``python -m consumer`` with the real pipeline, small
training parameters, fast retries and short locks, and hooks to hold it at chosen moments.

Configured by the usual ML_* variables plus:
- FAULT_TRAIN_DELAY: seconds to wait after a training started (a window to restart the broker);
- FAULT_PUBLISH_DELAY: seconds to wait after each chunk written to Redis while publishing (a
  window to SIGKILL the worker half-way through a version);
- FAULT_LOCK_TTL (default 2), FAULT_MAX_ATTEMPTS (default 2), FAULT_RECOVERY_INTERVAL (default 1).

Every training start is pushed on the Redis list ``fault:starts`` (``<tenant>:<pid>``),
every end on ``fault:ends`` (``<tenant>:<status>:<pid>``), the first chunk of each publish on
``fault:publishing``; when Redis is away these notes are skipped, the work is not.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import redis  # noqa: E402

from consumer.app import load_settings, run_worker  # noqa: E402
from consumer.retry import RetryPolicy  # noqa: E402
from published import versions  # noqa: E402
from recommender import pipeline  # noqa: E402
from recommender.model.params import TrainParams  # noqa: E402

FAST = TrainParams(components=8, max_epochs=4, patience=1, validation_users=200)


def _note(client: redis.Redis, key: str, value: str) -> None:
    try:
        client.rpush(key, value)
    except redis.RedisError:
        pass


def _train(settings, client, tenant, *, algorithm=None, force=False):
    pid = os.getpid()
    _note(client, "fault:starts", f"{tenant}:{pid}")
    time.sleep(float(os.environ.get("FAULT_TRAIN_DELAY", "0")))
    result = pipeline.train_tenant(settings, client, tenant, algorithm=algorithm, force=force,
                                   params=FAST, exclusive=True)  # as consumer.jobs does
    _note(client, "fault:ends", f"{tenant}:{result.status}:{pid}")
    return result


def _hold_publishing() -> None:
    delay = float(os.environ.get("FAULT_PUBLISH_DELAY", "0"))
    if not delay:
        return
    original = versions.VersionWriter._flush

    def flush(self, pipe):
        original(self, pipe)
        _note(self.client, "fault:publishing", f"{self.tenant}:{self.version}")
        time.sleep(delay)

    versions.VersionWriter._flush = flush


if __name__ == "__main__":
    _hold_publishing()
    env = os.environ
    policy = RetryPolicy(max_attempts=int(env.get("FAULT_MAX_ATTEMPTS", "2")), base_delay=0.2,
                         max_delay=1, lock_wait_delay=0.3, lock_wait_max=1, jitter=0)
    raise SystemExit(run_worker(load_settings(), train_fn=_train, policy=policy,
                                lock_ttl=float(env.get("FAULT_LOCK_TTL", "2")),
                                schedule_seconds=0, stop_grace=0.5,
                                recovery_interval=float(env.get("FAULT_RECOVERY_INTERVAL", "1"))))
