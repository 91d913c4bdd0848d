"""api/inloop.py: the WSGI app behind gunicorn's asyncio worker sees what a WSGI server gives it."""

from __future__ import annotations

import asyncio
import threading

from api_client import KEY

from api.inloop import InLoopWsgi, environ
from runtime.signing import signed_headers


def _scope(path: str = "/user-items", query: bytes = b"", headers=()) -> dict:
    return {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(),
            "query_string": query, "root_path": "", "scheme": "http", "http_version": "1.1",
            "server": ("127.0.0.1", 5000), "client": ("127.0.0.1", 40000),
            "headers": list(headers)}


def _call(app: InLoopWsgi, scope: dict) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"]


def test_environ_follows_pep_3333():
    env = environ(_scope("/a b/é", b"x=%0A&y=2", [(b"x-totara-time", b"1"), (b"accept", b"a"),
                                                   (b"accept", b"b"),
                                                   (b"content-type", b"text/plain")]), b"")
    assert env["PATH_INFO"] == "/a b/é".encode().decode("latin-1")
    assert env["QUERY_STRING"] == "x=%0A&y=2"
    assert env["HTTP_X_TOTARA_TIME"] == "1" and env["HTTP_ACCEPT"] == "a,b"
    assert env["CONTENT_TYPE"] == "text/plain" and "HTTP_CONTENT_TYPE" not in env
    assert env["REMOTE_ADDR"] == "127.0.0.1" and env["SERVER_PORT"] == "5000"


def test_the_service_answers_the_same_through_the_adapter(api):
    # Given the app as the tests' client calls it, wrapped as gunicorn's asyncio worker serves it
    app = InLoopWsgi(api.app)
    headers = [(k.lower().encode(), v.encode()) for k, v in signed_headers(KEY).items()]
    query = b"totara_user_id=1&item_type=container_course&tenant=0&n_items=25"
    status, answer_headers, body = _call(app, _scope(query=query, headers=headers))
    direct = api.user_items()
    # Then status, type and body are those of the plain WSGI call
    assert status == direct.status_code == 200
    assert body == direct.content
    assert answer_headers[b"content-type"] == direct.headers["content-type"].encode()
    status, _, body = _call(app, _scope("/user-items", query))  # unsigned
    assert status == 401 and body == b"Invalid access"


def test_slow_pages_run_in_threads_and_totaras_calls_in_the_loop(api):
    seen: dict[str, str] = {}

    def recording(env, start_response):
        seen[env["PATH_INFO"]] = threading.current_thread().name
        return api.app(env, start_response)

    app = InLoopWsgi(recording)
    for path in ("/health-check", "/livez", "/"):
        _call(app, _scope(path))
    assert seen["/livez"] == threading.main_thread().name
    assert seen["/health-check"].startswith("slow-page") and seen["/"].startswith("slow-page")


def test_lifespan_is_acknowledged():
    sent: list[str] = []
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        sent.append(message["type"])

    asyncio.run(InLoopWsgi(lambda env, start: [])({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
