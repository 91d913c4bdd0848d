"""Log lines of every process: human-readable text by default, JSON lines with ML_LOG_FORMAT=json.

Each line carries the context bound with ``bind`` (the API's request id, the worker's event id)
and goes through redaction: the shared key, anything shaped like a Totara signature (64 hex
digits) and passwords in URLs never reach a log, whatever the code logs by mistake.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Iterable
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s%(context)s: %(message)s"
REDACTED = "[redacted]"

_CONTEXT: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "totara_ml_log_context", default=None)
# Shorter values would redact ordinary words; the configuration never accepts such a key anyway.
_MIN_SECRET_LENGTH = 6
_secrets: set[str] = set()
# A signature is the SHA-256 of time + key: valid for 30 s to anyone who reads it.
_SIGNATURE = re.compile(r"\b[0-9a-fA-F]{64}\b")
_URL_PASSWORD = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@")
# LogRecord attributes that are not the caller's extra fields.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "context"}


def bind(**fields: str) -> contextvars.Token:
    """Add fields to every log line of this thread (or task) until ``unbind(token)``."""
    current = _CONTEXT.get()
    return _CONTEXT.set({**current, **fields} if current else fields)


def unbind(token: contextvars.Token) -> None:
    _CONTEXT.reset(token)


def context() -> dict[str, str]:
    return dict(_CONTEXT.get() or {})


def register_secrets(values: Iterable[str | None]) -> None:
    """Values that must never appear in a log line (the shared key)."""
    for value in values:
        if value and len(value) >= _MIN_SECRET_LENGTH:
            _secrets.add(value)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _SIGNATURE.sub(REDACTED, text)
    return _URL_PASSWORD.sub(r"\1***@", text)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        fields = _CONTEXT.get()
        record.context = ("".join(f" {k}={v}" for k, v in fields.items()) if fields else "")
        return redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, pid, message, context."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line: dict[str, Any] = {
            "time": f"{stamp}.{int(record.msecs):03d}Z", "level": record.levelname,
            "logger": record.name, "pid": record.process,
            "message": redact(record.getMessage()),
        }
        line.update(_CONTEXT.get() or {})
        for name, value in vars(record).items():  # fields given with extra={...}
            if name not in _STANDARD and name not in line:
                line[name] = value if isinstance(value, int | float | bool) else redact(str(value))
        if record.exc_info:
            line["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


class Handler(logging.StreamHandler):
    """The service's handler, on stderr."""

    def __init__(self, fmt: str = "text", stream: Any = None) -> None:
        super().__init__(stream or sys.stderr)
        self.setFormatter(formatter(fmt))


def configure(level: str, fmt: str = "text", secrets: Iterable[str | None] = ()) -> None:
    """Route the root logger through ``Handler`` in ``fmt``.

    A root logger that already has someone else's handlers (pytest's capture) is left to them;
    the process's handlers of this module are switched to ``fmt``.
    """
    register_secrets(secrets)
    root = logging.getLogger()
    ours = [h for h in root.handlers if isinstance(h, Handler)]
    for handler in ours:
        handler.setFormatter(formatter(fmt))
    if not root.handlers:
        root.addHandler(Handler(fmt))
    root.setLevel(level)

