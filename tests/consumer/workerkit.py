"""Test helpers for the consumer: a fake trainer, a worker in a thread, queue inspection."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kombu import Connection, Queue

from consumer import jobs
from consumer.dedup import DoneMarkers
from consumer.retry import RetryPolicy
from consumer.topology import Topology, is_amqp
from consumer.worker import Worker
from published.locks import LockRegistry
from tests.waiting import wait_for  # noqa: F401  (re-exported for the consumer tests)

FAST_POLICY = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.2, lock_wait_delay=0.05,
                          lock_wait_max=0.2, jitter=0)


def unique_prefix() -> str:
    return f"test_ml_{uuid.uuid4().hex[:10]}"


@dataclass
class FakeResult:
    tenant: str
    status: str = "published"
    message: str = ""
    version: str | None = "1700000000000-deadbeef"
    stage_seconds: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)


class FakeTrainer:
    """Stands in for recommender.pipeline.train_tenant; records calls and concurrency."""

    def __init__(self, *, seconds: float = 0.0, gate: threading.Event | None = None,
                 status: str = "published", errors: list[BaseException] | None = None,
                 journal: list[str] | None = None) -> None:
        self.seconds = seconds
        self.gate = gate
        self.status = status
        self.errors = list(errors or [])  # raised by the first calls, in order
        self.journal = journal if journal is not None else []
        self.calls: list[tuple[str, str | None, bool]] = []
        self.running = 0
        self.max_running = 0
        self.running_by_tenant: dict[str, int] = {}
        self.max_by_tenant: dict[str, int] = {}
        self.barrier: threading.Barrier | None = None  # set to require trainings to overlap
        self.started = threading.Event()
        self._mutex = threading.Lock()

    def __call__(self, settings: Any, client: Any, tenant: str, *, algorithm: str | None = None,
                 force: bool = False) -> FakeResult:
        with self._mutex:
            self.calls.append((tenant, algorithm, force))
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            now = self.running_by_tenant.get(tenant, 0) + 1
            self.running_by_tenant[tenant] = now
            self.max_by_tenant[tenant] = max(self.max_by_tenant.get(tenant, 0), now)
            error = self.errors.pop(0) if self.errors else None
        self.started.set()
        try:
            if self.barrier is not None:
                self.barrier.wait(10)
            if self.gate is not None:
                assert self.gate.wait(10), "test gate never opened"
            if self.seconds:
                time.sleep(self.seconds)
            if error is not None:
                raise error
            self.journal.append(f"trained {tenant}")
            return FakeResult(tenant, status=self.status)
        finally:
            with self._mutex:
                self.running -= 1
                self.running_by_tenant[tenant] -= 1

    def tenants(self) -> list[str]:
        return [call[0] for call in self.calls]


def make_worker(url: str, prefix: str, settings: Any, client: Any, trainer: Any, *,
                tenants: list[str] | None = None, tenants_fn: Any = None,
                policy: RetryPolicy = FAST_POLICY,
                lock_ttl: float = 1.0, schedule_seconds: int | None = None,
                stop_grace: float = 0.5, owner: str | None = None, heartbeat: int = 30,
                alive_file: Path | None = None, max_deliveries: int = 5) -> Worker:
    context = jobs.JobContext(settings=settings, client=client, markers=DoneMarkers(client),
                              locks=LockRegistry(), train_fn=trainer,
                              tenants_fn=tenants_fn or (lambda s: list(tenants or [])),
                              lock_ttl=lock_ttl,
                              owner=owner)
    connection = Connection(url, heartbeat=heartbeat if is_amqp(url) else 0)
    return Worker(connection, Topology(prefix, amqp=is_amqp(url)), client=client,
                  context=context, policy=policy, schedule_seconds=schedule_seconds,
                  safety_interval=0.05, stop_grace=stop_grace,
                  reconnect_intervals=(0.2, 0.2, 0.5), alive_file=alive_file,
                  max_deliveries=max_deliveries)


@contextmanager
def running(worker: Worker, timeout: float = 5.0) -> Iterator[Worker]:
    thread = threading.Thread(target=worker.serve, daemon=True, name="test-worker")
    thread.start()
    try:
        wait_for(lambda: worker.ready, timeout)
        yield worker
    finally:
        worker.request_stop()
        worker.request_stop()
        thread.join(timeout)
        assert not thread.is_alive(), "worker did not stop"


def drain(connection: Connection, queue: Queue) -> list[Any]:
    """Every message now in ``queue`` (acked: removed)."""
    out = []
    with connection.channel() as channel:
        bound = queue.bind(channel)
        while True:
            message = bound.get(no_ack=True, accept=["json", "application/octet-stream",
                                                    "text/plain", "application/data"])
            if message is None:
                return out
            out.append(message)


def queue_depth(connection: Connection, queue: Queue) -> int:
    with connection.channel() as channel:
        return queue.bind(channel).queue_declare(passive=True).message_count


@dataclass
class ExportSetup:
    worker: Worker
    settings: Any
    tenants: list[str]
    export_dir: Any


def export_worker(url: str, prefix: str, base_env: dict[str, str], client: Any, folder: Any,
                  train_fn: Any) -> ExportSetup:
    """A worker that trains a real two-tenant demo export written under ``folder``."""
    from recommender.offline import demo
    from recommender.service import export_tenants
    from runtime.config import from_env

    export_dir = folder / "export"
    tenants = demo.write_demo_export(export_dir, tenants=2, users=150, items=60,
                                     interactions=3000, seed=3)
    settings = from_env({**base_env, "ML_EXPORT_DIR": str(export_dir), "ML_TOP_K": "20"})
    worker = make_worker(url, prefix, settings, client, train_fn, tenants_fn=export_tenants,
                         lock_ttl=30)
    return ExportSetup(worker, settings, tenants, export_dir)
