"""Which errors of a training job the worker retries and which it dead-letters at once: the
error says so by its type (runtime.errors.RetryableError), plus Redis' and the OS's own errors."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from kombu import Connection
from workerkit import FakeTrainer, drain, make_worker, running, wait_for

from consumer import events, jobs
from consumer.delivery import DEAD_REASON_HEADER
from consumer.sender import send
from consumer.topology import Topology
from runtime import errors

RETRIED = [
    errors.TransientDownloadError("tenants.csv: Totara answered HTTP 503"),
    errors.ModelStoreError("cannot write the model to ML_MODELS_DIR=/models: disk full"),
    errors.RetryableError("anything that says it may pass"),
    errors.LockLostError("version 1 of tenant 7 was not published: the tenant's lock expired"),
    redis.ConnectionError("Redis went away"),
    redis.TimeoutError("Redis is slow"),
    OSError("disk full"),
]
DEAD_LETTERED = [
    errors.DownloadError("user_interactions_7.csv: Totara answered 404"),
    errors.DownloadTooLarge("user_interactions_7.csv: larger than ML_DOWNLOAD_MAX_BYTES"),
    errors.ExportError("user_interactions_7.csv line 3: 2 fields, expected 4"),
    errors.BadFile("items_7.csv: the file is missing"),
    errors.StaleVersionError("version 1 of tenant 7 was not published: a newer one is current"),
    errors.CorruptListError("a packed list of 7 bytes does not hold its counts"),
    errors.ConfigError("ML_TOP_K='x': expected a whole number from 1 to 1000"),
    errors.InvalidEvent("tenant must be a tenant id (digits), got 'x'"),
    errors.BadRequest("Bad request: missing parameter tenant"),
    errors.ServiceError("a known failure that will not pass"),
    ValueError("bug"),
    KeyError("bug"),
]

# Neither retried nor dead-lettered: the stopping worker leaves its message unacked, and the
# worker that is given it again resumes from the checkpoint (tests/test_checkpoint.py, and
# tests/consumer/test_worker_memory.py for the hand-back).
HANDED_BACK = [errors.FitInterrupted("tenant 7: the fit stopped at epoch 3, checkpointed")]


def _name(error: BaseException) -> str:
    return type(error).__name__


@pytest.mark.parametrize("error", RETRIED, ids=_name)
def test_infrastructure_errors_are_retryable(error):
    assert jobs.is_retryable(error)


@pytest.mark.parametrize("error", DEAD_LETTERED + HANDED_BACK, ids=_name)
def test_data_set_up_and_programming_errors_are_not_retryable(error):
    assert not jobs.is_retryable(error)


def test_every_error_class_of_the_service_is_classified_by_these_tests():
    classes = {c for c in vars(errors).values()
               if isinstance(c, type) and issubclass(c, errors.ServiceError)}
    assert classes <= {type(e) for e in RETRIED + DEAD_LETTERED + HANDED_BACK}


@pytest.fixture
def worker_env(memory_url, prefix, settings, fake_redis):
    """Runs one train event whose first training raises ``error``, until ``settled`` holds."""
    topology = Topology(prefix, amqp=False)
    connection = Connection(memory_url)

    def run(error: BaseException, settled: Callable[[dict[str, int]], bool]
            ) -> tuple[FakeTrainer, dict[str, int], list]:
        trainer = FakeTrainer(errors=[error])
        with running(make_worker(memory_url, prefix, settings, fake_redis, trainer)) as worker:
            send(connection, topology, events.make_event(events.TRAIN, tenant="4"))
            wait_for(lambda: settled(worker.settler.counts) and worker.inflight is None)
            counts = dict(worker.settler.counts)
        return trainer, counts, drain(connection, topology.dead_queue)

    yield run
    connection.release()


@pytest.mark.parametrize("error", RETRIED[:2], ids=_name)
def test_worker_retries_a_retryable_training_error_then_succeeds(worker_env, error):
    # The failed delivery is acked once its retry is published, the retry when it succeeded.
    trainer, counts, dead = worker_env(error, lambda counts: counts.get("acked") == 2)
    assert len(trainer.calls) == 2 and counts["retried"] == 1
    assert dead == []


@pytest.mark.parametrize("error", DEAD_LETTERED[:4], ids=_name)
def test_worker_dead_letters_a_final_training_error_without_retry(worker_env, error):
    trainer, counts, dead = worker_env(error, lambda counts: counts.get("dead") == 1)
    assert len(trainer.calls) == 1 and counts.get("retried", 0) == 0
    (message,) = dead
    assert message.headers[DEAD_REASON_HEADER] == f"{_name(error)}: {error}"
