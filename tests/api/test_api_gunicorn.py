"""The API under a real gunicorn with deploy/gunicorn.conf.py, real Redis, Totara's signing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from api_client import KEY
from publish_fixture import publish_tiny_model

from runtime.signing import signed_headers

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server(real_redis, real_redis_url, base_env, tmp_path):
    port = _free_port()
    env = {**os.environ, **base_env, "ML_REDIS_URL": real_redis_url,
           "ML_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "2", "ML_LOG_LEVEL": "WARNING"}
    env.pop("ML_DEV", None)
    gunicorn = Path(sys.executable).with_name("gunicorn")
    log = (tmp_path / "gunicorn.log").open("w")
    # Started from another directory: the config must find the project by itself.
    process = subprocess.Popen([str(gunicorn), "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
                                "api.app:create_app()"], cwd=tmp_path, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process, tmp_path / "gunicorn.log")
        yield url, real_redis, process
    finally:  # whatever happened, no gunicorn outlives the test
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            if requests.get(url + "/livez", timeout=2).status_code == 200:
                return
        except requests.RequestException:  # refused, or accepted before a worker is up
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail("gunicorn did not start:\n" + log.read_text())
        time.sleep(0.1)


def totara_get(url: str, path: str, **params: object) -> requests.Response:
    """As Totara's curl client calls: signed headers, its User-Agent, 1 s connect / 2 s total."""
    return requests.get(url + path, params=params, headers=signed_headers(KEY), timeout=(1, 2))


def test_totara_requests_through_gunicorn(server):
    url, redis_client, _ = server
    assert totara_get(url, "/user-items", totara_user_id=1, item_type="container_course",
                      tenant=0, n_items=25).json() == {
        "success": False, "message": "The recommender model is not ready yet", "items": []}
    assert requests.get(url + "/readyz", timeout=2).status_code == 503
    publish_tiny_model(redis_client, "0")
    time.sleep(1.1)  # the workers' cached pointers expire
    # Several requests so that both workers, each with its own connection, answer.
    for _ in range(10):
        answer = totara_get(url, "/user-items", totara_user_id=1, item_type="container_course",
                            tenant=0, n_items=25)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.content == (b'{"success": true, "items": [["3", " 0.8123"], '
                                  b'["1", " 0.5000"], ["2", "-0.0456"]]}')
    similar = totara_get(url, "/similar-items", totara_item_id="engage_article7", tenant=0,
                         n_items=3).json()
    assert similar["success"] is True and len(similar["items"]) == 3
    assert requests.get(url + "/readyz", timeout=2).status_code == 200
    health = totara_get(url, "/health-check").json()
    assert health["totara"]["recommendation_model"] == "true"
    assert health["totara"]["redis_reachable"] == "true"


def test_unsigned_and_skewed_requests_are_refused(server):
    url = server[0]
    answer = requests.get(url + "/user-items", timeout=2)
    assert answer.status_code == 401 and answer.text.startswith("Invalid access")
    skewed = signed_headers(KEY, time.time() - 120)
    answer = requests.get(url + "/nothing-here", headers=skewed, timeout=2)
    assert answer.status_code == 401 and "clocks were not in sync" in answer.text
    assert requests.get(url + "/", timeout=2).headers["Content-Type"].startswith("text/html")


def test_a_new_version_is_served_within_a_second_and_shutdown_is_quick(server):
    url, redis_client, process = server
    publish_tiny_model(redis_client, "0")
    first = totara_get(url, "/user-items", totara_user_id=1, item_type="container_course",
                       tenant=0, n_items=1).json()
    assert first["success"] is True
    publish_tiny_model(redis_client, "5")
    deadline = time.monotonic() + 2.5
    while totara_get(url, "/user-items", totara_user_id=1, item_type="container_course",
                     tenant=5, n_items=1).json()["success"] is not True:
        assert time.monotonic() < deadline, "tenant 5 not served after its publication"
        time.sleep(0.1)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=15)
    assert time.monotonic() - started < 5
