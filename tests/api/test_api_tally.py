"""api/tally.py: requests counted in memory reach the Prometheus metrics exactly, in batches."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram

from api.tally import Tally

BOUNDS = (0.001, 0.01, 0.1, 1.0)
# Latencies on, between and beyond the bounds (a value on a bound belongs to that bucket).
SECONDS = [0.0, 0.0005, 0.001, 0.002, 0.01, 0.05, 0.1, 0.5, 1.0, 3.0, 0.001, 0.0099]


def _metrics() -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    counter = Counter("t_requests", "requests", ["endpoint", "outcome"], registry=registry)
    histogram = Histogram("t_seconds", "latency", ["endpoint"], buckets=BOUNDS,
                          registry=registry)
    return registry, counter, histogram


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): round(s.value, 9)
            for family in registry.collect() for s in family.samples
            if not s.name.endswith("_created")}


def test_a_flushed_tally_gives_the_samples_that_observe_and_inc_give():
    direct, counter, histogram = _metrics()
    batched, counter_b, histogram_b = _metrics()
    tally = Tally(counter_b, histogram_b, (*BOUNDS, float("inf")), interval=60.0)
    for index, seconds in enumerate(SECONDS):
        endpoint, outcome = ("a", "success") if index % 3 else ("b", "no_user")
        counter.labels(endpoint, outcome).inc()
        histogram.labels(endpoint).observe(seconds)
        tally.add(endpoint, outcome, seconds)
    assert _samples(batched) != _samples(direct)  # nothing written yet: a minute to go
    tally.flush()
    assert _samples(batched) == _samples(direct)
    tally.flush()  # a second flush adds nothing
    assert _samples(batched) == _samples(direct)


def test_without_an_interval_every_request_is_written_at_once():
    registry, counter, histogram = _metrics()
    tally = Tally(counter, histogram, (*BOUNDS, float("inf")), interval=0.0)
    tally.add("a", "success", 0.002)
    assert registry.get_sample_value("t_requests_total",
                                     {"endpoint": "a", "outcome": "success"}) == 1
    assert registry.get_sample_value("t_seconds_bucket", {"endpoint": "a", "le": "0.01"}) == 1


def test_counts_reach_the_metrics_within_the_interval_without_a_scrape():
    registry, counter, histogram = _metrics()
    tally = Tally(counter, histogram, (*BOUNDS, float("inf")), interval=0.05)
    for _ in range(5):
        tally.add("a", "success", 0.002)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not registry.get_sample_value(
            "t_requests_total", {"endpoint": "a", "outcome": "success"}):
        time.sleep(0.01)
    assert registry.get_sample_value("t_requests_total",
                                     {"endpoint": "a", "outcome": "success"}) == 5
    assert registry.get_sample_value("t_seconds_count", {"endpoint": "a"}) == 5
