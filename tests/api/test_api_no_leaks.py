"""Nothing on the open pages says where things are: no URL, host, port, path or key."""

from __future__ import annotations

import socket

import pytest
from api_client import KEY, Api
from publish_fixture import publish_tiny_model

from published import keys
from published.runs import LastRun, RunStatus
from recommender import pipeline
from runtime.config import from_env
from runtime.errors import DownloadError

PREFIX = "leaky-prefix-q7z"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pages(api: Api) -> dict[str, str]:
    health = api.get("/health-check").json
    # Totara's own URL and address are facts of its health check (contract §2), answered to
    # Totara's signed requests only. Nothing else in it may say where things are.
    health["totara"].pop("url")
    health["totara"].pop("totara_ip", None)
    return {"/": api.get("/", headers={}).text, "/health-check": repr(health),
            "/metrics": api.get("/metrics", headers={}).text}


def test_a_failing_download_puts_no_url_host_or_path_on_the_open_pages(base_env, fake_redis,
                                                                       tmp_path):
    # Given a Totara URL with a recognisable host, port and path that refuses connections
    port = _closed_port()
    settings = from_env({**base_env, "ML_TOTARA_URL": f"http://127.0.0.1:{port}/{PREFIX}"})
    # of a tenant published before
    publish_tiny_model(fake_redis, "0")
    # When a training run fails to download its export
    with pytest.raises(DownloadError):
        pipeline.train_tenant(settings, fake_redis, "0")
    stored = fake_redis.hgetall(keys.last_run("0"))
    run = LastRun.from_fields({k.decode(): v.decode() for k, v in stored.items()})
    assert run.status == RunStatus.FAILED and "user_interactions_0.csv" in run.message
    # Then the pages show that it failed, and nothing of where
    pages = _pages(Api(settings, fake_redis))
    assert "failed" in pages["/"]
    for path, text in pages.items():
        for secret in (PREFIX, f":{port}", "pluginfile", str(tmp_path), "ml-export-", KEY):
            assert secret not in text, f"{secret!r} on {path}"
