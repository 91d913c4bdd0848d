"""The demo's stand-in for Totara: the health check's status call is ok, and the export files go
only to requests signed as Totara checks them."""

from __future__ import annotations

import threading

import pytest
import requests

from api import checks
from recommender.offline.standin import EXPORT_PREFIX, serve
from runtime.signing import signed_headers
from tests.faults.servers import free_port

KEY = "stand-in-key-0123456789"


@pytest.fixture
def standin(tmp_path):
    (tmp_path / "tenants.csv").write_text("tenants\n0\n")
    url = f"http://127.0.0.1:{free_port()}"
    server = serve(url, KEY, tmp_path)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield url
    server.shutdown()
    server.server_close()


def test_the_health_checks_totara_call_succeeds_against_the_stand_in(standin):
    facts, errors = checks.totara(standin)
    assert errors == []


def test_export_files_are_served_to_signed_requests_only(standin):
    url = standin + EXPORT_PREFIX + "tenants.csv"
    assert requests.get(url, headers=signed_headers(KEY), timeout=5).text == "tenants\n0\n"
    assert requests.get(url, timeout=5).status_code == 404
    assert requests.get(url, headers=signed_headers("another key"), timeout=5).status_code == 404
    assert requests.get(url, headers=signed_headers(KEY, now=0), timeout=5).status_code == 404
    escape = standin + EXPORT_PREFIX + "..%2Ftenants.csv"
    assert requests.get(escape, headers=signed_headers(KEY), timeout=5).status_code == 404


def test_the_stand_in_listens_on_loopback_only():
    with pytest.raises(ValueError, match="ML_TOTARA_URL"):
        serve("http://totara.example.org:8080", KEY, None)
