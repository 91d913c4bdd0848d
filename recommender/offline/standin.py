"""A local stand-in for the Totara site, so that the demo's ``/health-check`` is true.

``python -m recommender.offline.standin`` listens on the host and port of ``ML_TOTARA_URL``
(loopback only) and answers the two calls the service makes to Totara: the GraphQL status
operation that ``/health-check`` sends, and the export downloads, served from
``ML_EXPORT_DIR`` to requests signed with ``ML_TOTARA_KEY`` as Totara checks them. Nothing else:
it is not Totara, only enough of it for a demo on one machine.
"""

from __future__ import annotations

import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from runtime.signing import signature

EXPORT_PREFIX = "/pluginfile.php/1/ml_recommender/export/"
STATUS_PATH = "/totara/webapi/ajax.php"
STATUS_OPERATION = "totara_webapi_status_nosession"
CLOCK_WINDOW = 30  # seconds, as Totara checks the service's signature


def signed(headers: Any, key: str, now: float | None = None) -> bool:
    stamp = headers.get("X-Totara-Time", "")
    try:
        skew = abs((time.time() if now is None else now) - int(stamp))
    except ValueError:
        return False
    return skew <= CLOCK_WINDOW and hmac.compare_digest(signature(stamp, key),
                                                        headers.get("X-Totara-Ml-Key", ""))


def handler(key: str, export_dir: Path | None) -> type[BaseHTTPRequestHandler]:
    class StandIn(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # the service logs its own calls; one line per health check would be noise

        def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                operation = json.loads(raw or b"{}").get("operationName")
            except (ValueError, AttributeError):
                operation = None
            if urlsplit(self.path).path != STATUS_PATH or operation != STATUS_OPERATION:
                return self._send(404, b"Not found")
            body = {"data": {"totara_webapi_status": {"status": "ok"}}}
            return self._send(200, json.dumps(body).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802
            path = urlsplit(self.path).path
            name = unquote(path[len(EXPORT_PREFIX):])
            file = export_dir / name if export_dir else None
            # Totara answers 404 to an unsigned request too, not 401: nothing to probe.
            if (not path.startswith(EXPORT_PREFIX) or file is None or "/" in name
                    or name.startswith(".") or not file.is_file()
                    or not signed(self.headers, key)):
                return self._send(404, b"Not found")
            return self._send(200, file.read_bytes(), "text/csv")

    return StandIn


def serve(url: str, key: str, export_dir: Path | None) -> ThreadingHTTPServer:
    """A server bound to the loopback address on ``url``'s port (not yet serving)."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost") or not parts.port:
        raise ValueError(f"ML_TOTARA_URL={url!r}: the stand-in needs http://127.0.0.1:PORT")
    server = ThreadingHTTPServer(("127.0.0.1", parts.port), handler(key, export_dir))
    server.daemon_threads = True
    return server


def main() -> int:
    url, key = os.environ.get("ML_TOTARA_URL", ""), os.environ.get("ML_TOTARA_KEY", "")
    export_dir = os.environ.get("ML_EXPORT_DIR", "").strip()
    try:
        server = serve(url, key, Path(export_dir) if export_dir else None)
    except (ValueError, OSError) as exc:
        print(f"Totara stand-in: cannot listen: {exc}", file=sys.stderr)
        return 2
    print(f"Totara stand-in on {url}: status ok; export files from {export_dir or 'nowhere'}",
          flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
