"""The WSGI app behind gunicorn's asyncio worker: requests are read by the event loop, then run.

gunicorn's sync worker reads a request in the process that runs it, so a client that sends its
request slowly (or not at all) holds a whole process until the 30 s timeout. gunicorn's ``asgi``
worker reads every connection in an asyncio loop, at the cost of a coroutine each, and hands a
request on only when it is complete. This adapter runs the (synchronous) Falcon app right there,
in the loop, as the sync worker would: a request is CPU work plus one Redis round trip of well
under a millisecond, bounded by the Redis timeouts (api/connection.py), so a thread pool would
only add a hand-over to each request. deploy/gunicorn.conf.py wraps the app with it when the
worker is the ``asgi`` one, so ``api.app:create_app()`` stays the one application everywhere.

The pages that may wait on something slow by design (``/health-check`` calls Totara with a 1.5 s
timeout, the status page may probe the broker, ``/metrics`` reads Redis) run in a few threads
instead, so that they never hold up Totara's requests on the same process.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Awaitable, Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Request bodies are never read by this service (GET only); a larger one is not buffered.
MAX_BODY = 64 * 1024
SLOW_PATHS = frozenset({"/", "/health-check", "/metrics"})
SLOW_THREADS = 4


class InLoopWsgi:
    """An ASGI 3 application that runs ``app`` (WSGI) for each complete HTTP request."""

    def __init__(self, app: Wsgi, slow_paths: Collection[str] = SLOW_PATHS,
                 threads: int = SLOW_THREADS) -> None:
        self.app = app
        self.slow_paths = slow_paths
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="slow-page")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            env = environ(scope, await _body(receive))
            if scope["path"] in self.slow_paths:
                answer = await asyncio.get_running_loop().run_in_executor(
                    self._pool, self.run, env)
            else:
                answer = self.run(env)
            status, headers, data = answer
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": data})
        # Anything else (a WebSocket) is refused by returning without accepting it.

    def run(self, env: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        started: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            started[:] = [status, headers]
            return _no_write

        result = self.app(env, start_response)
        try:
            data = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = started
        return (int(status[:3]),
                [(name.lower().encode("latin-1"), value.encode("latin-1"))
                 for name, value in headers], data)


def _no_write(data: bytes) -> None:
    raise RuntimeError("write() is not supported: return the body instead")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _body(receive: Receive) -> bytes:
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size <= MAX_BODY:
            chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def environ(scope: Scope, body: bytes) -> dict[str, Any]:
    """The WSGI environ (PEP 3333) of an ASGI HTTP request."""
    server = scope.get("server") or ("localhost", 80)
    client = scope.get("client") or ("", 0)
    env: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": scope.get("root_path", "").encode("utf-8").decode("latin-1"),
        # PEP 3333: the decoded path, its bytes read as latin-1
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
        "SERVER_NAME": str(server[0]), "SERVER_PORT": str(server[1] or ""),
        "REMOTE_ADDR": str(client[0]), "REMOTE_PORT": str(client[1]),
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
        "wsgi.version": (1, 0), "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            env[name] = value
            continue
        key = "HTTP_" + name
        env[key] = f"{env[key]},{value}" if key in env else value
    return env
