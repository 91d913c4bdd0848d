"""The API's access log: one line per request, on by default, JSON with ML_LOG_FORMAT=json,
never the query string, a signature or the key, and no line forged by a client's path."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from api_client import KEY
from hypothesis import given
from hypothesis import strategies as st

from runtime import logsetup
from runtime.config import from_env
from runtime.errors import ConfigError
from runtime.signing import signature, signed_headers
from tests.faults.servers import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
SIGNED_QUERY = {"totara_user_id": "7", "item_type": "container_course", "tenant": "0",
                "n_items": "5", "sig": signature("1700000000", KEY)}


@pytest.fixture
def access_lines(log_lines):
    """The api.access lines, formatted by the service's handler (text or JSON)."""

    def capture(fmt: str = "text"):
        stream = log_lines(fmt)
        return lambda: [line for line in stream.getvalue().splitlines()
                        if _logger_of(line, fmt) == "api.access"]

    return capture


def _logger_of(line: str, fmt: str) -> str:
    if fmt == "json":
        return json.loads(line)["logger"]
    return line.split()[4].rstrip(":")  # date, time, level, [pid], logger


def test_each_request_gets_one_line_with_method_path_status_duration_and_request_id(
        api, access_lines):
    lines = access_lines()
    api.get("/user-items", params=SIGNED_QUERY, headers={**signed_headers(KEY),
                                                         "X-Request-Id": "lb-7"})
    api.get("/livez", headers={})
    api.get("/no-such-page", headers={})
    got = lines()
    assert len(got) == 3, got
    assert " GET /user-items 200 bad_request " in got[0] and got[0].endswith("ms")
    assert "request_id=lb-7" in got[0]
    assert " GET /livez 200 " in got[1] and " GET /no-such-page 401 unauthorized " in got[2]


def test_json_lines_carry_fields_and_no_query_signature_or_key(api, access_lines):
    lines = access_lines("json")
    headers = {**signed_headers(KEY), "X-Request-Id": "lb-8"}
    api.get("/user-items", params=SIGNED_QUERY, headers=headers)
    [line] = lines()
    record = json.loads(line)
    assert (record["method"], record["path"], record["status"], record["outcome"]) == (
        "GET", "/user-items", 200, "bad_request")
    assert isinstance(record["duration_ms"], float) and record["request_id"] == "lb-8"
    for secret in (KEY, SIGNED_QUERY["sig"], headers["X-Totara-Ml-Key"], "totara_user_id"):
        assert secret not in line


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_control_characters_in_a_path_cannot_forge_a_line(api, log_lines, fmt):
    # Given a path that carries a line break and a fake log line after it (a %0A decoded)
    stream = log_lines(fmt)
    api.get("/x\n2026-12-03 10:00:00,000 INFO [1] api.access: GET /admin 200 1.0ms\r\x1b[2K",
            headers={})
    # Then each logged line is a real one: authentication's 401 and the access line, which
    # write out the break and the terminal escape
    lines = stream.getvalue().splitlines()
    assert [_logger_of(line, fmt) for line in lines] == ["api.auth", "api.access"]
    assert not any("\r" in line or "\x1b" in line for line in lines)
    if fmt == "text":
        assert all("\\x0a2026-12-03" in line for line in lines)


def test_ml_access_log_0_turns_it_off(make_api, base_env, access_lines):
    assert from_env(base_env).access_log is True
    with pytest.raises(ConfigError, match="ML_ACCESS_LOG='yes': expected 1"):
        from_env({**base_env, "ML_ACCESS_LOG": "yes"})
    lines = access_lines()
    quiet = make_api(from_env({**base_env, "ML_ACCESS_LOG": "0"}))
    quiet.get("/livez", headers={})
    assert lines() == []


@pytest.mark.integration
def test_under_gunicorn_one_json_line_per_request_and_a_percent_0a_forges_nothing(
        base_env, real_redis_url, tmp_path):
    port = free_port()
    env = {**os.environ, **base_env, "ML_REDIS_URL": real_redis_url, "ML_LOG_FORMAT": "json",
           "ML_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": "1"}
    log_path = tmp_path / "api.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([str(Path(sys.executable).with_name("gunicorn")), "-c",
                                    str(ROOT / "deploy" / "gunicorn.conf.py"),
                                    "api.app:create_app()"], cwd=tmp_path, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        forged = "/user-items%0A{\"level\":\"INFO\",\"message\":\"forged\"}"
        for path in ("/livez", forged, "/livez"):
            _raw_get(port, path, process)
        time.sleep(0.5)
    finally:
        stop_process(process)
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    access = [r for r in records if r["logger"] == "api.access"]
    assert [r["path"] for r in access] == ["/livez", '/user-items\\x0a{"level":"INFO",'
                                           '"message":"forged"}', "/livez"]
    assert not any(r.get("message") == "forged" for r in records)  # no line of its own


def _raw_get(port: int, path: str, process) -> None:
    """A request line as a client sends it, byte for byte (no client library re-encodes it)."""
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                             .encode())
                while sock.recv(65536):
                    pass
                return
        except OSError:
            assert process.poll() is None and time.monotonic() < deadline, "no gunicorn"
            time.sleep(0.1)



@given(st.text(max_size=300))
def test_printable_text_never_holds_a_character_that_breaks_a_line(text):
    shown = logsetup.printable(text)
    assert len(shown.splitlines()) <= 1 and "\r" not in shown and "\x1b" not in shown
