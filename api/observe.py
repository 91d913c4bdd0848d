"""Middleware around every request: a request id for its log lines, its count and its latency,
and the access log: one line per request (method, path, status, outcome, milliseconds, request
id).

It is the first middleware, so it also sees the 401s that authentication answers before any
resource runs. Its cost is a few microseconds a request: the count and latency are added up in
memory and written to the Prometheus metrics in batches (api/tally.py), and the outcome of a
success is read from the first bytes of the body; only failure envelopes are parsed. The access
line is a log record like any other, formatted and written by the service's handler: it costs
more than the rest together (docs/api.md), which ML_ACCESS_LOG=0 saves.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time

import falcon

from api import metrics
from runtime import logsetup

log = logging.getLogger("api.access")

REQUEST_ID_HEADER = "X-Request-Id"
# A caller's id (a load balancer's) is kept when it is short and plain, so it can be logged as is.
_CALLER_ID = re.compile(r"[A-Za-z0-9._-]{1,64}\Z")


# The WSGI name of the header: read from the environ directly, as it is on every request.
_REQUEST_ID_KEY = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")


class _Ids:
    """A random prefix per process and a counter: unique enough to find a request's lines, at a
    tenth of the cost of reading random bytes for every request."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = os.urandom(4).hex()
        self.sequence = itertools.count(1)

    def new(self) -> str:
        return f"{self.prefix}{next(self.sequence):06x}"


_IDS = _Ids()
# The app may be built before gunicorn forks: each worker draws a prefix of its own.
os.register_at_fork(after_in_child=_IDS.reset)


class RequestObserver:
    def __init__(self, access_log: bool = True) -> None:
        # The only access log: gunicorn's own stays off (api/gunicorn_conf.py), one line each.
        self._access_log = access_log

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.env.get(_REQUEST_ID_KEY)
        request_id = given if given and _CALLER_ID.match(given) else _IDS.new()
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
        metrics.TALLY.add(endpoint, outcome, elapsed)
        resp.set_header(REQUEST_ID_HEADER, context.request_id)
        if self._access_log and log.isEnabledFor(logging.INFO):
            access(req, status, outcome, elapsed)
        logsetup.unbind(context.log_token)


def access(req: falcon.Request, status: int, outcome: str, elapsed: float) -> None:
    """The access line; the request id comes from the bound context. Never the query string
    (it may carry signed parameters) nor a header; what the client chose (method, path) is
    escaped, so a %0A in a path cannot start a line of its own."""
    method, path = logsetup.printable(req.method, 16), logsetup.printable(req.path)
    duration_ms = round(elapsed * 1000, 1)
    log.info("%s %s %d %s %.1fms", method, path, status, outcome, duration_ms,
             extra={"method": method, "path": path, "status": status, "outcome": outcome,
                    "duration_ms": duration_ms})
