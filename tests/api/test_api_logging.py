"""API log lines: a request id on each, text or JSON lines, never the key or a signature."""

from __future__ import annotations

import json
import logging
import time

import pytest
from api_client import KEY
from publish_fixture import publish_tiny_model

from runtime.signing import signed_headers


def test_every_request_log_line_has_the_request_id_and_it_is_returned(api, log_lines):
    stream = log_lines()
    answer = api.get("/user-items", headers={"X-Request-Id": "lb-42"})
    assert answer.status_code == 401
    assert answer.headers["X-Request-Id"] == "lb-42"
    lines = [line for line in stream.getvalue().splitlines() if "api." in line]
    assert lines and all("request_id=lb-42" in line for line in lines)


def test_a_request_without_a_usable_id_gets_a_generated_one(api, log_lines):
    stream = log_lines()
    answer = api.get("/user-items", headers={"X-Request-Id": "bad id\twith spaces"})
    generated = answer.headers["X-Request-Id"]
    assert len(generated) >= 12 and generated in stream.getvalue()
    other = api.get("/user-items", headers={}).headers["X-Request-Id"]
    assert other != generated


def test_json_lines_carry_level_logger_message_and_request_id(api, log_lines):
    stream = log_lines("json")
    api.get("/user-items", headers={"X-Request-Id": "abc"})
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    refusal = next(r for r in records if r["logger"] == "api.auth")
    assert refusal["level"] == "INFO" and refusal["request_id"] == "abc"
    assert refusal["message"].startswith("401 for GET /user-items")
    assert refusal["time"].endswith("Z") and isinstance(refusal["pid"], int)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_logs_never_contain_the_key_or_a_signature(api, log_lines, fmt):
    stream = log_lines(fmt)
    publish_tiny_model(api.redis, "0")
    signed = signed_headers(KEY)
    skewed = signed_headers(KEY, time.time() - 300)
    api.user_items(user=1)
    api.user_items(user=555)  # a cold user: debug lines of the fallback
    api.get("/user-items", headers=skewed)  # a clock failure: a warning
    api.get("/user-items", headers={**signed, "User-Agent": "curl"})
    api.get("/health-check")
    # Code that logs a secret by mistake is redacted too.
    logging.getLogger("api.test").warning("key %s sig %s url amqp://ml:hunter2pass@rabbit/",
                                          KEY, signed["X-Totara-Ml-Key"])
    text = stream.getvalue()
    assert "401" in text and "redacted" in text
    for secret in (KEY, signed["X-Totara-Ml-Key"], skewed["X-Totara-Ml-Key"], "hunter2pass"):
        assert secret not in text
