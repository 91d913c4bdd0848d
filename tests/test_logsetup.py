"""runtime.logsetup: text and JSON lines, bound context, redaction of secrets."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime import logsetup
from runtime.signing import signature


def _logger(fmt: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logger = logging.getLogger(f"test.logsetup.{fmt}")
    logger.handlers = [logsetup.Handler(fmt, stream=stream)]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger, stream


def test_redaction_covers_the_key_signatures_and_url_passwords():
    logsetup.register_secrets(["worker-secret-key-42", None, "abc"])
    text = logsetup.redact("key=worker-secret-key-42 sig=" + signature("1700000000", "k")
                           + " broker amqp://ml:p4ss@rabbit:5672// redis://:pw0rd@r:6379/0")
    assert "worker-secret-key-42" not in text and "p4ss" not in text and "pw0rd" not in text
    assert text.count(logsetup.REDACTED) == 2 and "amqp://ml:***@rabbit" in text
    assert logsetup.redact("abc") == "abc"  # too short to be a key: ordinary words stay


def test_text_lines_carry_the_bound_context_until_unbound():
    logger, stream = _logger("text")
    token = logsetup.bind(event="e-1", tenant="3")
    logger.info("training")
    logsetup.unbind(token)
    logger.info("idle")
    first, second = stream.getvalue().splitlines()
    assert first.endswith("test.logsetup.text event=e-1 tenant=3: training")
    assert second.endswith("test.logsetup.text: idle")


def test_context_is_per_thread():
    logger, stream = _logger("text")
    token = logsetup.bind(request_id="main")
    thread = threading.Thread(target=lambda: logger.info("from another thread"))
    thread.start()
    thread.join()
    logsetup.unbind(token)
    assert "request_id" not in stream.getvalue()


def test_json_lines_have_fields_extras_and_redacted_exceptions():
    logger, stream = _logger("json")
    logsetup.register_secrets(["json-secret-key-77"])
    try:
        raise RuntimeError("failed with json-secret-key-77")
    except RuntimeError:
        logger.exception("boom %s", "json-secret-key-77", extra={"tenant": "5", "tries": 2})
    record = json.loads(stream.getvalue())
    assert record["level"] == "ERROR" and record["logger"] == "test.logsetup.json"
    assert record["tenant"] == "5" and record["tries"] == 2
    assert "json-secret-key-77" not in stream.getvalue()
    assert "RuntimeError" in record["exception"]


@given(st.text(max_size=200))
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_whatever_a_message_carries_it_stays_one_line(fmt, text):
    # A client's path, an event field or an exception's text can hold CR, LF, NEL, U+2028...
    logger, stream = _logger(fmt)
    logger.warning("got %s", text)
    written = stream.getvalue()
    assert written.endswith("\n") and len(written[:-1].splitlines()) == 1
    if fmt == "json":
        assert json.loads(written)["message"] == logsetup.redact("got " + text)
