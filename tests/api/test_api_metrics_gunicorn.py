"""/metrics under a real gunicorn: the counts of every worker process, added up."""

from __future__ import annotations

import re
import time

import pytest
import requests
from publish_fixture import publish_tiny_model
from test_api_gunicorn import server, totara_get  # noqa: F401  (server is a fixture)

from api import metrics

pytestmark = pytest.mark.integration


def _sample(text: str, name: str, **labels: str) -> float:
    """The value of one series in Prometheus' text format (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$", line)
        if match and match.group(1) == name:
            found = ",".join(sorted((match.group(2) or "").split(","))) if match.group(2) else ""
            if found == wanted:
                return float(match.group(3))
    return 0.0


def test_metrics_add_up_every_gunicorn_worker_and_report_tenants(server):  # noqa: F811
    url, redis_client, _ = server
    publish_tiny_model(redis_client, "0")
    time.sleep(1.1)  # cached pointers expire
    for _ in range(20):
        assert totara_get(url, "/user-items", totara_user_id=1, item_type="container_course",
                          tenant=0, n_items=5).json()["success"] is True
    for _ in range(3):
        totara_get(url, "/user-items", totara_user_id=999, item_type="container_course",
                   tenant=0, n_items=5)  # a cold user: the popularity list
    assert requests.get(url + "/user-items", timeout=2).status_code == 401
    # Each worker writes its counts within TALLY_SECONDS (api/tally.py); after that, whichever
    # worker answers the scrape reports the sum over both.
    time.sleep(metrics.TALLY_SECONDS + 0.5)
    for _ in range(4):
        text = requests.get(url + "/metrics", timeout=2).text
        assert _sample(text, "totara_ml_http_requests_total", endpoint="user_items",
                       outcome="success") == 23
        assert _sample(text, "totara_ml_http_requests_total", endpoint="user_items",
                       outcome="unauthorized") == 1
        assert _sample(text, "totara_ml_cold_user_answers_total", source="popular") == 3
        assert _sample(text, "totara_ml_http_request_duration_seconds_count",
                       endpoint="user_items") == 24
        assert _sample(text, "totara_ml_tenant_trained", tenant="0") == 1
        assert 0 <= _sample(text, "totara_ml_tenant_published_version_age_seconds",
                            tenant="0") < 60
    assert "test-shared-secret" not in text
