"""Middleware around every request: a request id for its log lines, its count and its latency.

It is the first middleware, so it also sees the 401s that authentication answers before any
resource runs. Its cost is a few microseconds a request: the metric children are resolved once
per (endpoint, outcome) and kept, and the outcome of a success is read from the first bytes of
the body; only failure envelopes are parsed.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time

import falcon
from prometheus_client import Counter, Histogram

from api import metrics
from runtime import logsetup

log = logging.getLogger("api.access")

REQUEST_ID_HEADER = "X-Request-Id"
# A caller's id (a load balancer's) is kept when it is short and plain, so it can be logged as is.
_CALLER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")


class RequestObserver:
    def __init__(self) -> None:
        self._counters: dict[tuple[str, str], Counter] = {}
        self._histograms: dict[str, Histogram] = {}
        # A random prefix per process and a counter: unique enough to find a request's lines,
        # at a tenth of the cost of reading random bytes for every request.
        self._prefix = ""
        self._sequence = itertools.count()
        self._pid = 0

    def _new_id(self) -> str:
        if self._pid != os.getpid():  # the app may be built before gunicorn forks
            self._pid = os.getpid()
            self._prefix = os.urandom(4).hex()
            self._sequence = itertools.count(1)
        return f"{self._prefix}{next(self._sequence):06x}"

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.get_header(REQUEST_ID_HEADER)
        request_id = given if given and _CALLER_ID.match(given) else self._new_id()
        req.context.request_id = request_id
        req.context.log_token = logsetup.bind(request_id=request_id)
        req.context.started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: object,
                         req_succeeded: bool) -> None:
        context = req.context
        started = context.get("started")
        if started is None:  # another middleware failed before ours ran
            return
        elapsed = time.perf_counter() - started
        endpoint = metrics.ENDPOINTS.get(req.path, "other")
        status = resp.status_code
        outcome = metrics.outcome(endpoint, status, resp.data)
        key = (endpoint, outcome)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = metrics.REQUESTS.labels(endpoint, outcome)
        counter.inc()
        histogram = self._histograms.get(endpoint)
        if histogram is None:
            histogram = self._histograms[endpoint] = metrics.LATENCY.labels(endpoint)
        histogram.observe(elapsed)
        resp.set_header(REQUEST_ID_HEADER, context.request_id)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s %s %d %s %.1fms", req.method, req.path, status, outcome,
                      elapsed * 1000)
        logsetup.unbind(context.log_token)
