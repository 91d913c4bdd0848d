"""The API's Prometheus metrics and ``GET /metrics``.

Under gunicorn (deploy/gunicorn.conf.py sets ``PROMETHEUS_MULTIPROC_DIR``) every worker process
writes its counters to memory-mapped files in that folder and ``/metrics``, whichever worker
answers it, adds up all of them. Without the variable (tests, another WSGI server) a process
reports its own counts. The per-tenant gauges are read from Redis when scraped
(``published.tenantmetrics``), so they are the same whichever process answers.

``/metrics`` is open, like the probes: Prometheus cannot sign requests. It discloses counts,
latencies and per-tenant model facts, never a key, a signature or a URL; restrict it by network.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from enum import StrEnum

import falcon
import redis
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from api import envelope
from api.tally import Tally
from published.tenantmetrics import TenantCollector

REQUESTS = Counter("totara_ml_http_requests", "Requests answered, by endpoint and outcome",
                   ["endpoint", "outcome"])
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
LATENCY = Histogram("totara_ml_http_request_duration_seconds",
                    "Time from the request reaching the app to its answer, by endpoint",
                    ["endpoint"], buckets=LATENCY_BUCKETS)


class ColdAnswer(StrEnum):
    """Where an answer for a user without a published list came from: COLD_ANSWERS' source."""

    FOLD_IN = "fold_in"  # computed in real time from the user's recent events
    POPULAR = "popular"  # the tenant's popularity list


COLD_ANSWERS = Counter("totara_ml_cold_user_answers",
                       "Answers for users without a published list, by source "
                       "(fold_in: real-time from recent events; popular: popularity list)",
                       ["source"])

# Paths with a label of their own; anything else (scanners, typos) is "other", so that
# made-up paths cannot grow the number of series.
ENDPOINTS = {"/user-items": "user_items", "/similar-items": "similar_items",
             "/health-check": "health_check", "/": "status_page", "/metrics": "metrics",
             "/livez": "livez", "/readyz": "readyz", "/openapi.json": "openapi",
             "/favicon.ico": "favicon"}
RECOMMENDING = frozenset({"user_items", "similar_items"})

# Failure messages of the contract, by prefix (some carry an explanation after the prefix).
_FAILURE_KINDS = (
    (envelope.NOT_READY, "not_ready"),
    (envelope.NO_TENANT, "no_tenant"),
    (envelope.NOT_TRAINED.split("{")[0], "not_trained"),
    (envelope.NO_USER, "no_user"),
    (envelope.NO_ITEM, "no_item"),
    (envelope.NO_TYPE, "no_type"),
    ("Bad request:", "bad_request"),
)
_STATUS_KINDS = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed",
                 503: "unavailable"}
_SUCCESS_PREFIX = b'{"success": true'


def outcome(endpoint: str, status: int, body: bytes | None) -> str:
    """``success``, a failure envelope's kind (``no_user``...), or what the status says."""
    if status >= 300 or status < 200:
        return _STATUS_KINDS.get(status) or ("error" if status >= 500 else "client_error")
    if endpoint not in RECOMMENDING or body is None or body.startswith(_SUCCESS_PREFIX):
        return "success"
    try:
        message = json.loads(body)["message"]
    except (ValueError, KeyError, TypeError):
        return "failure"
    for prefix, kind in _FAILURE_KINDS:
        if message.startswith(prefix):
            return kind
    return "failure"


def multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


# Seconds between writes of the request counts into the (memory-mapped) multiprocess files.
TALLY_SECONDS = 1.0
# The requests and latencies of this process (api/tally.py): batched under gunicorn.
TALLY = Tally(REQUESTS, LATENCY, (*LATENCY_BUCKETS, float("inf")),
              TALLY_SECONDS if multiprocess() else 0.0)


class MetricsEndpoint:
    """GET /metrics in Prometheus' text format."""

    def __init__(self, client: Callable[[], redis.Redis], retrain_minutes: int) -> None:
        if multiprocess():
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry)
        else:
            self.registry = REGISTRY
        self.tenants = CollectorRegistry(auto_describe=False)
        self.tenants.register(TenantCollector(client, retrain_minutes))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        TALLY.flush()  # this process's latest requests; the others' are at most a second old
        resp.data = generate_latest(self.registry) + generate_latest(self.tenants)
        resp.content_type = CONTENT_TYPE_LATEST
