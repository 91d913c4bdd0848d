"""python -m bench traffic: Totara-signed traffic in Totara's mix against a running service,
latency percentiles and errors; exit status 1 when a request failed."""

from __future__ import annotations

import json
import random
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from api_client import KEY
from publish_fixture import publish_tiny_model

from bench import traffic
from bench.__main__ import main as bench_main


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def service(api):
    publish_tiny_model(api.redis, "0")
    server = make_server("127.0.0.1", 0, api.app, server_class=_Server, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_traffic_follows_totaras_mix_with_cold_users():
    population = traffic.Population.synthetic(["0", "3"], users=50, items=10)
    rng = random.Random(5)
    requests = [traffic.plan(population, rng, cold_share=0.2) for _ in range(4000)]
    endpoints = [r.endpoint for r in requests]
    assert 0.65 < endpoints.count("/user-items") / 4000 < 0.75
    assert 0.25 < endpoints.count("/similar-items") / 4000 < 0.33
    users = [r.query["totara_user_id"] for r in requests if r.endpoint == "/user-items"]
    cold = sum(u >= traffic.COLD_USER_OFFSET for u in users) / len(users)
    assert 0.15 < cold < 0.25
    assert {r.query["tenant"] for r in requests if r.query} == {"0", "3"}
    assert all(r.query["totara_item_id"].startswith(("engage_article", "totara_playlist"))
               for r in requests if r.endpoint == "/similar-items")


def test_traffic_against_a_service_reports_percentiles_and_no_errors(service, capsys,
                                                                     tmp_path):
    status = bench_main(["traffic", "--url", service, "--key", KEY, "--rate", "60",
                         "--duration", "1", "--users", "3", "--items", "6", "--threads", "8",
                         "--json", str(tmp_path / "out.json")])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "/user-items" in out and "p99 ms" in out and "errors (no answer" in out
    summary = json.loads((tmp_path / "out.json").read_text())
    assert summary["requests"] == 60
    assert summary["errors"] == {}
    assert summary["endpoints"]["/user-items"]["requests"] > 20
    assert any(text.endswith("success") for text in summary["answers"])


def test_a_wrong_key_is_counted_as_errors_and_fails_the_run(service, capsys):
    status = bench_main(["traffic", "--url", service, "--key", "not-the-key", "--rate", "20",
                         "--duration", "0.5"])
    out = capsys.readouterr().out
    assert status == 1
    assert "HTTP 401" in out
