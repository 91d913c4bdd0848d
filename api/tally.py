"""Request counts and latencies kept in process memory, written to Prometheus in batches.

Counting a request in Prometheus' objects costs three value updates (its counter, its latency
bucket, the latency sum), each a lock, a process id check and, under gunicorn (multiprocess
mode), a write into a memory-mapped file, with prometheus_client's Python around each: more
than the rest of the request's bookkeeping together. Here a request adds to two dicts under a
lock, and the sums reach the metrics at most ``interval`` seconds later: from a thread of the
process, before the process answers ``/metrics`` and when it exits. Prometheus scrapes every
15 s or more, so the lag is not seen; ``interval=0`` writes every request at once (one process,
where nothing is memory-mapped: tests, other WSGI servers).
"""

from __future__ import annotations

import atexit
import bisect
import logging
import os
import threading
import time
from collections.abc import Sequence

from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)


class Tally:
    """Requests by (endpoint, outcome) for ``requests``, latencies by endpoint for ``latency``
    (a Histogram labelled by endpoint whose bucket bounds are ``bounds``, +Inf last)."""

    def __init__(self, requests: Counter, latency: Histogram, bounds: Sequence[float],
                 interval: float) -> None:
        self._requests = requests
        self._latency = latency
        self._bounds = tuple(bounds)
        self.interval = interval
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        # endpoint -> [sum of seconds, count in bucket 0, count in bucket 1, ...]
        self._rows: dict[str, list[float]] = {}
        self._thread: threading.Thread | None = None
        if interval > 0:
            # gunicorn forks workers: each one needs a thread (and a lock) of its own.
            os.register_at_fork(after_in_child=self._after_fork)
            atexit.register(self.flush)

    def add(self, endpoint: str, outcome: str, seconds: float) -> None:
        # Prometheus' bucket for v is the first bound >= v (buckets are "le").
        bucket = bisect.bisect_left(self._bounds, seconds) + 1
        key = (endpoint, outcome)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1
            row = self._rows.get(endpoint)
            if row is None:
                row = self._rows[endpoint] = [0.0] * (len(self._bounds) + 1)
            row[0] += seconds
            row[bucket] += 1
        if self._thread is None:
            if self.interval <= 0:
                self.flush()
            else:
                self._start()

    def flush(self) -> None:
        """Write what was counted since the last flush into the Prometheus metrics."""
        with self._lock:
            counts, rows = self._counts, self._rows
            self._counts, self._rows = {}, {}
        for (endpoint, outcome), count in counts.items():
            self._requests.labels(endpoint, outcome).inc(count)
        for endpoint, row in rows.items():
            child = self._latency.labels(endpoint)
            # Histogram.observe adds one value at a time; its sum and per-bucket values
            # (Histogram._sum, Histogram._buckets) take a batch. tests/api/test_api_tally.py
            # checks that the result is what observe() gives, should the library change.
            child._sum.inc(row[0])
            for index, count in enumerate(row[1:]):
                if count:
                    child._buckets[index].inc(count)

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="metrics-tally",
                                            daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            try:
                self.flush()
            except Exception:  # a full disk under the metrics folder: keep serving, retry
                log.exception("could not write the request metrics")

    def _after_fork(self) -> None:
        # The parent's thread does not exist here; its lock may have been held at the fork.
        self._lock = threading.Lock()
        self._thread = None
        self._counts, self._rows = {}, {}
