"""A fake Totara site for tests: the export download and the GraphQL status check.

    with FakeTotara(key, export_dir) as totara:
        settings = ... ML_TOTARA_URL=totara.url ...
        totara.export_mode = "accepted_then_ok"; totara.accepted_count = 2

Serves ``GET /pluginfile.php/1/ml_recommender/export/<file>`` from ``export_dir`` only to
requests signed like Totara checks them (|dt| <= 30 s, sha256(time + key) in hex), else 404, and
``POST /totara/webapi/ajax.php`` for ``totara_webapi_status_nosession``. The knobs are plain
attributes that may be changed while the server runs:

- ``export_mode``: "ok"; "accepted" (always 202); "accepted_then_ok" (202 for the first
  ``accepted_count`` file requests after the mode was set, then as "ok"); "not_found" (404);
  "server_error" (500); "hang" (wait ``hang_seconds``, then as "ok"); "truncated" (announce the
  whole file, send half of it, close); "stalled" (as "truncated", then wait ``hang_seconds``
  before closing); "no_tenants" (204 for tenants.csv, files as "ok").
- ``status_mode``: "ok"; "error" (HTTP 500); "bad" (a status other than "ok"); "hang".
- ``gzip``: send files gzip-compressed (``Content-Encoding: gzip``), as a web server may.
- ``precompressed``: the files are gzip data already: send them as they are with
  ``Content-Encoding: gzip`` (a compression bomb is a small file here).
- ``send_length``: False sends files without ``Content-Length``, ending them by closing the
  connection, so the client learns the size only by reading.
- ``requests_seen``: every request as (method, path without the query string).
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

EXPORT_PREFIX = "/pluginfile.php/1/ml_recommender/export/"
STATUS_PATH = "/totara/webapi/ajax.php"
EXPORT_MODES = ("ok", "accepted", "accepted_then_ok", "not_found", "server_error", "hang",
                "truncated", "stalled", "no_tenants")
STATUS_MODES = ("ok", "error", "bad", "hang")
MAX_CLOCK_SKEW = 30


class FakeTotara:
    def __init__(self, key: str, export_dir: Path | None = None) -> None:
        self.key = key
        self.export_dir = export_dir
        self._export_mode = "ok"
        self.accepted_count = 1
        self.accepted_served = 0  # 202s given since export_mode was last set
        self.status_mode = "ok"
        self.hang_seconds = 5.0
        self.gzip = False
        self.precompressed = False
        self.send_length = True
        self.requests_seen: list[tuple[str, str]] = []
        self.headers_seen: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True  # a hanging answer must not hold up stop()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    @property
    def export_mode(self) -> str:
        return self._export_mode

    @export_mode.setter
    def export_mode(self, mode: str) -> None:
        if mode not in EXPORT_MODES:
            raise ValueError(f"export_mode {mode!r}: expected one of {', '.join(EXPORT_MODES)}")
        with self._lock:
            self._export_mode = mode
            self.accepted_served = 0

    def start(self) -> FakeTotara:
        self._stopping.clear()
        # A short poll interval: stop() waits for the serving loop to notice.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True, name="fake-totara")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes hanging handlers
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeTotara:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- decisions

    def signature_ok(self, headers: Any) -> bool:
        stamp = headers.get("X-Totara-Time", "")
        given = headers.get("X-Totara-Ml-Key", "")
        try:
            skew = abs(time.time() - int(stamp))
        except ValueError:
            return False
        expected = hashlib.sha256((stamp + self.key).encode("utf-8")).hexdigest()
        return skew <= MAX_CLOCK_SKEW and hmac.compare_digest(expected, given)

    def hang(self) -> None:
        self._stopping.wait(self.hang_seconds)

    def take_accepted(self) -> bool:
        """Whether this export request gets a 202 in the current mode."""
        with self._lock:
            if self._export_mode == "accepted":
                return True
            if self._export_mode == "accepted_then_ok" and self.accepted_served < \
                    self.accepted_count:
                self.accepted_served += 1
                return True
            return False


def _handler_for(totara: FakeTotara) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # tests stay quiet

        def _record(self) -> str:
            path = urlsplit(self.path).path
            totara.requests_seen.append((self.command, path))
            totara.headers_seen.append(dict(self.headers.items()))
            return path

        def _send(self, status: int, body: bytes = b"", content_type: str = "text/plain",
                  encoding: str | None = None) -> None:
            self.send_response(status)
            if encoding:
                self.send_header("Content-Encoding", encoding)
            if status != 204:
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            path = self._record()
            if not path.startswith(EXPORT_PREFIX):
                return self._send(404, b"Not found")
            self._export(unquote(path[len(EXPORT_PREFIX):]))

        def _export(self, name: str) -> None:
            if not totara.signature_ok(self.headers):
                return self._send(404, b"Not found")
            mode = totara.export_mode
            if mode == "not_found":
                return self._send(404, b"Not found")
            if mode == "server_error":
                return self._send(500, b"Internal error")
            if totara.take_accepted():
                return self._send(202)
            if mode == "no_tenants" and name == "tenants.csv":
                return self._send(204)
            if mode == "hang":
                totara.hang()
            path = (totara.export_dir / name) if totara.export_dir else None
            if path is None or "/" in name or name.startswith(".") or not path.is_file():
                return self._send(404, b"Not found")
            body = path.read_bytes()
            if mode in ("truncated", "stalled"):
                self.send_response(200)
                self.send_header("Content-Type", "text/csv")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:len(body) // 2])
                self.wfile.flush()
                if mode == "stalled":
                    totara.hang()
                self.close_connection = True
                return None
            if not totara.send_length:
                return self._send_unsized(body)
            if totara.precompressed:
                return self._send(200, body, "text/csv", encoding="gzip")
            if totara.gzip:
                return self._send(200, gzip.compress(body), "text/csv", encoding="gzip")
            return self._send(200, body, "text/csv")

        def _send_unsized(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/csv")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for start in range(0, len(body), 1 << 16):
                self.wfile.write(body[start:start + (1 << 16)])

        def do_POST(self) -> None:  # noqa: N802
            path = self._record()
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if path != STATUS_PATH:
                return self._send(404, b"Not found")
            try:
                operation = json.loads(raw or b"{}").get("operationName")
            except (ValueError, AttributeError):
                operation = None
            if operation != "totara_webapi_status_nosession":
                body = {"errors": [{"message": "Invalid operation"}]}
                return self._send(400, json.dumps(body).encode(), "application/json")
            mode = totara.status_mode
            if mode == "hang":
                totara.hang()
            if mode == "error":
                return self._send(500, b"Internal error")
            status = "maintenance" if mode == "bad" else "ok"
            body = {"data": {"totara_webapi_status": {"status": status}}}
            return self._send(200, json.dumps(body).encode(), "application/json")

        def handle(self) -> None:
            try:
                super().handle()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing to tell anyone

    return Handler
