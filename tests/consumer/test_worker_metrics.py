"""The worker's metrics and event logs: events by type and outcome, stage durations, dead
letters, lock waits, the /metrics port with the tenant gauges, the event id on training lines."""

from __future__ import annotations

import io
import logging
import socket
import time
import urllib.request

import pytest
from kombu import Connection, Producer
from prometheus_client import REGISTRY
from workerkit import FakeResult, make_worker, running, wait_for

from consumer import events
from consumer import metrics as worker_metrics
from consumer.sender import send
from consumer.topology import Topology
from published import keys
from published.locks import TenantLock
from runtime import logsetup


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class StagedTrainer:
    """Returns results with stage durations and logs a line as the pipeline does."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self, settings, client, tenant, *, algorithm=None, force=False) -> FakeResult:
        logging.getLogger("recommender.pipeline").info("tenant %s: fit", tenant)
        self.calls.append(tenant)
        return FakeResult(tenant, stage_seconds={"load": 0.2, "fit": 1.5, "publish": 0.1})


@pytest.fixture
def publish(memory_url, prefix):
    connection = Connection(memory_url)
    topology = Topology(prefix, amqp=False)
    yield lambda event: send(connection, topology, event)
    connection.release()


def test_events_are_counted_by_type_and_outcome_with_stage_durations(
        memory_url, prefix, settings, fake_redis, publish):
    trainer = StagedTrainer()
    before = {
        "published": _value("totara_ml_worker_events_total", type="train", outcome="published"),
        "fanned": _value("totara_ml_worker_events_total", type="export-ready",
                         outcome="fanned_out"),
        "recorded": _value("totara_ml_worker_events_total", type="interaction",
                           outcome="recorded"),
        "fit": _value("totara_ml_worker_training_stage_seconds_count", stage="fit"),
        "total": _value("totara_ml_worker_training_stage_seconds_count", stage="total"),
    }
    worker = make_worker(memory_url, prefix, settings, fake_redis, trainer)
    with running(worker):
        publish(events.make_event(events.EXPORT_READY, tenants=["0", "3"]))
        publish(events.make_event(events.INTERACTION, tenant="0", user_id=5,
                                  item_id="container_course1", timestamp=1_700_000_000))
        wait_for(lambda: len(trainer.calls) == 2 and worker.settler.counts.get("acked") == 4)
    assert _value("totara_ml_worker_events_total", type="train",
                  outcome="published") == before["published"] + 2
    assert _value("totara_ml_worker_events_total", type="export-ready",
                  outcome="fanned_out") == before["fanned"] + 1
    assert _value("totara_ml_worker_events_total", type="interaction",
                  outcome="recorded") == before["recorded"] + 1
    assert _value("totara_ml_worker_training_stage_seconds_count",
                  stage="fit") == before["fit"] + 2
    assert _value("totara_ml_worker_training_stage_seconds_count",
                  stage="total") == before["total"] + 2
    assert _value("totara_ml_worker_training_in_progress") == 0


def test_poison_messages_and_lock_waits_are_counted(memory_url, prefix, settings, fake_redis):
    trainer = StagedTrainer()
    dead_before = _value("totara_ml_worker_dead_letters_total", type="invalid")
    waits_before = _value("totara_ml_worker_lock_waits_total")
    TenantLock(fake_redis, "8", ttl=30, owner="elsewhere").acquire()
    worker = make_worker(memory_url, prefix, settings, fake_redis, trainer)
    topology = Topology(prefix, amqp=False)
    with running(worker), Connection(memory_url) as connection:
        send(connection, topology, events.make_event(events.TRAIN, tenant="8"))
        with connection.channel() as channel:
            Producer(channel).publish(b"not json", exchange=topology.exchange,
                                      routing_key="train", content_type="application/json",
                                      content_encoding="utf-8")
        wait_for(lambda: _value("totara_ml_worker_dead_letters_total",
                                type="invalid") == dead_before + 1)
        wait_for(lambda: _value("totara_ml_worker_lock_waits_total") > waits_before)
    assert _value("totara_ml_worker_events_total", type="invalid",
                  outcome="dead_lettered") >= 1
    assert trainer.calls == []


def test_training_log_lines_name_the_event(memory_url, prefix, settings, fake_redis, publish):
    stream = io.StringIO()
    handler = logsetup.Handler("text", stream=stream)
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    trainer = StagedTrainer()
    event = events.make_event(events.TRAIN, tenant="4")
    try:
        worker = make_worker(memory_url, prefix, settings, fake_redis, trainer)
        with running(worker):
            publish(event)
            wait_for(lambda: worker.settler.counts.get("acked") == 1)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    lines = stream.getvalue().splitlines()
    fit = next(line for line in lines if "tenant 4: fit" in line)
    assert f"event={event.id}" in fit
    life = "\n".join(lines)
    for step in ("received train", "started train", "finished in", "acked after"):
        assert step in life


def _taken_port() -> socket.socket:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    return taken


def test_metrics_port_serves_worker_and_tenant_metrics(fake_redis):
    fake_redis.sadd(keys.TENANTS, "0")
    fake_redis.set(keys.current("0"), "v1")
    fake_redis.hset(keys.meta("0", "v1"), mapping={"status": "trained", "auc": "0.8",
                                                   "precision_at_10": "0.3",
                                                   "trained_at": time.time()})
    with _taken_port() as probe:  # a port free a moment ago
        port = probe.getsockname()[1]
    served = worker_metrics.serve(port, lambda: fake_redis, 1440, addr="127.0.0.1")
    assert served == port
    text = urllib.request.urlopen(f"http://127.0.0.1:{served}/metrics", timeout=5).read().decode()
    assert "totara_ml_worker_events_total" in text
    assert 'totara_ml_tenant_validation_score{metric="auc",tenant="0"} 0.8' in text
    assert 'totara_ml_tenant_last_success_timestamp_seconds{tenant="0"}' in text


def test_a_taken_port_is_not_hunted_past_and_the_reason_is_logged(fake_redis, caplog):
    # Given another process on the worker's port / When the worker serves its metrics
    with _taken_port() as taken, caplog.at_level(logging.ERROR, logger="consumer"):
        port = taken.getsockname()[1]
        served = worker_metrics.serve(port, lambda: fake_redis, 1440, addr="127.0.0.1")
    # Then no other port is taken (Prometheus would scrape the wrong worker), and it says why
    assert served is None
    assert f"127.0.0.1:{port}" in caplog.text and "ML_WORKER_INSTANCE" in caplog.text


def test_a_port_that_cannot_be_bound_leaves_the_worker_without_metrics_not_stopped(fake_redis):
    assert worker_metrics.serve(1, lambda: fake_redis, 1440, addr="192.0.2.1") is None
