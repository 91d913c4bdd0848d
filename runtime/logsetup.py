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
# Characters that end or rewrite a line on a terminal or in a log reader.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_JSON_BREAKS = {0x85: "\\u0085", 0x2028: "\\u2028", 0x2029: "\\u2029"}
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


def printable(text: str, limit: int | None = 500) -> str:
    """``text`` from a request, safe on one log line: control characters (CR, LF, ESC, the
    Unicode line separators) escaped so none can end the line and forge another, and cut at
    ``limit`` characters."""
    if limit is not None and len(text) > limit:
        text = text[:limit] + "..."
    # isprintable() is False for every character _CONTROL matches: the usual line costs no regex.
    return text if text.isprintable() else _CONTROL.sub(_escape, text)


def _escape(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 256 else f"\\u{code:04x}"


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
        record.context = printable("".join(f" {k}={v}" for k, v in fields.items())
                                   if fields else "", limit=None)
        return redact(super().format(record))

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        # One line per event whatever the message carries (a path, an exception's text from a
        # client's data); a traceback, added after this, keeps its lines.
        record.message = printable(record.message, limit=None)
        return super().formatMessage(record)


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
        # json escapes the C0 controls; these three end a line for many readers too.
        return json.dumps(line, ensure_ascii=False, default=str).translate(_JSON_BREAKS)


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

