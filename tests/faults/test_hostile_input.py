"""Oversized and hostile requests to the real server (gunicorn + the app), on the wire.

Huge numbers, 10 kB ids, other scripts' digits, control characters, repeated parameters, CR/LF
in values and headers, oversized request lines and headers: each gets the failure envelope or a
4xx, never a 5xx, never a stack trace, never a header of the caller's making. A damaged list
value in Redis is answered as if absent and logged once; a key of the wrong type gives a bare 500
in production and the exception's name only with ML_DEV.
"""

from __future__ import annotations

import json
import socket
from urllib.parse import quote

import pytest
from conftest import KEY
from servers import Api, RedisServer

from published import keys, versions
from recommender import pipeline
from recommender.model.params import TrainParams
from runtime import config
from runtime.signing import signed_headers

pytestmark = [pytest.mark.integration]

FAST = TrainParams(components=8, max_epochs=4, patience=1, validation_users=200)
TRACE_MARKS = (b"Traceback", b'File "', b"site-packages", b"/work/", KEY.encode())


def raw_get(port: int, target: str, headers: dict[str, str] | None = None,
            extra: bytes = b"") -> tuple[int, bytes, bytes]:
    """Send one GET exactly as given; (status, header block, body)."""
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (signed_headers(KEY) if headers is None else headers).items()]
    request = ("\r\n".join(lines)).encode("latin-1") + b"\r\n" + extra + b"\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.settimeout(2)
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


def _query(**params: str) -> str:
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())


USER = {"totara_user_id": "2", "item_type": "container_course", "tenant": "0", "n_items": "5"}
HOSTILE_QUERIES = [
    _query(**{**USER, "n_items": "9" * 30}),
    _query(**{**USER, "n_items": "1001"}),
    _query(**{**USER, "n_items": "-1"}),
    _query(**{**USER, "n_items": "1e3"}),
    _query(**{**USER, "totara_user_id": "1" * 3000}),
    _query(**{**USER, "tenant": "9" * 3000}),
    _query(**{**USER, "item_type": "x" * 3000}),
    _query(**{**USER, "item_type": "コース"}),
    _query(**{**USER, "tenant": "٣"}),  # an Arabic-Indic digit
    _query(**{**USER, "totara_user_id": "２"}),  # a full-width digit
    _query(**{**USER, "item_type": "container_course\x00"}),
    _query(**{**USER, "item_type": "\x1b[31mred"}),
    _query(**{**USER, "item_type": "x\r\nSet-Cookie: stolen=1"}),
    _query(**USER) + "&n_items=6",
    _query(**USER) + "&tenant=0",
    _query(**USER) + "&debug=1",
    "totara_user_id=2&item_type=container_course&tenant=0&n_items",
    "%ff%fe=%c3%28&totara_user_id=2",
    "&&&===&",
]
HOSTILE_SIMILAR = [
    _query(totara_item_id="engage_article" + "9" * 3000, tenant="0", n_items="5"),
    _query(totara_item_id="engage_article١٢", tenant="0", n_items="5"),
    _query(totara_item_id="../../etc/passwd", tenant="0", n_items="5"),
    _query(totara_item_id="engage_article1\nengage_article2", tenant="0", n_items="5"),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory, fault_export):
    root = tmp_path_factory.mktemp("hostile")
    redis_server = RedisServer(root / "redis").start()
    env = {"PATH": "/usr/bin:/bin", "ML_TOTARA_URL": "http://127.0.0.1:9", "ML_TOTARA_KEY": KEY,
           "ML_REDIS_URL": redis_server.url, "ML_MODELS_DIR": str(root / "models"),
           "ML_LOGS_DIR": str(root / "logs"), "ML_EXPORT_DIR": str(fault_export),
           "ML_NUM_THREADS": "1", "ML_LOG_LEVEL": "INFO", "ML_METRICS_PORT": "0"}
    client = redis_server.client()
    pipeline.train_tenant(config.from_env(env), client, "0", params=FAST)
    api = Api(env, root / "api.log", workers=1).start()
    dev = Api({**env, "ML_DEV": "1"}, root / "api-dev.log", workers=1).start()
    try:
        yield api, dev, client, root
    finally:
        api.stop()
        dev.stop()
        redis_server.kill()


def _assert_clean(status: int, head: bytes, body: bytes) -> None:
    assert status < 500, (status, body[:300])
    assert not any(mark in body for mark in TRACE_MARKS), body[:300]
    assert b"set-cookie" not in head.lower() and b"stolen" not in head
    if status == 200:
        answer = json.loads(body)
        assert answer["success"] is False and answer["items"] == [], answer


@pytest.mark.parametrize("query", HOSTILE_QUERIES)
def test_hostile_user_items_queries_get_the_failure_envelope_or_a_4xx(server, query):
    api = server[0]
    _assert_clean(*raw_get(api.port, "/user-items?" + query))


@pytest.mark.parametrize("query", HOSTILE_SIMILAR)
def test_hostile_similar_items_queries_get_the_failure_envelope_or_a_4xx(server, query):
    api = server[0]
    _assert_clean(*raw_get(api.port, "/similar-items?" + query))


@pytest.mark.parametrize("what", ["10 kB id", "10 kB header", "200 headers", "CRLF header",
                                  "bad time", "unsigned", "bad path"])
def test_oversized_or_malformed_requests_are_refused_with_a_4xx(server, what):
    api = server[0]
    signed = signed_headers(KEY)
    target, headers, extra = "/user-items?" + _query(**USER), dict(signed), b""
    if what == "10 kB id":
        target = "/user-items?" + _query(**{**USER, "totara_user_id": "1" * 10_000})
    elif what == "10 kB header":
        headers["X-Padding"] = "a" * 10_000
    elif what == "200 headers":
        extra = b"".join(b"X-H%d: v\r\n" % i for i in range(200))
    elif what == "CRLF header":
        extra = b"X-Totara-Time: 1\r\n\r\nGET /evil HTTP/1.1\r\n"
    elif what == "bad time":
        headers["X-Totara-Time"] = "1700000000.5"
    elif what == "unsigned":
        headers = {}
    else:
        target = "/%2e%2e/%2e%2e/etc/passwd"
    status, head, body = raw_get(api.port, target, headers, extra)
    assert 400 <= status < 500, (status, body[:300])
    assert not any(mark in body for mark in TRACE_MARKS), body[:300]


def test_a_damaged_list_in_redis_is_answered_without_it_and_logged_without_a_trace(server):
    api, _, client, root = server
    # Given user 2's stored lists are garbage (a bug or a tampered Redis)
    version = versions.current_version(client, "0")
    bucket = keys.user_bucket("0", version, 2)
    original = client.hget(bucket, "2")
    client.hset(bucket, "2", b"\xff\x07garbage")
    logged_before = len((root / "api.log").read_text())
    try:
        # Then they are answered as a user without a list is: the popularity list
        for _ in range(2):
            status, _, body = raw_get(api.port, "/user-items?" + _query(**USER))
            assert status == 200 and json.loads(body)["success"] is True, body[:300]
    finally:
        client.hset(bucket, "2", original)
    log = (root / "api.log").read_text()[logged_before:]
    assert log.count("published lists of user 2 cannot be read") == 1
    assert "unknown packed list format 255" in log and "Traceback" not in log


def test_a_key_of_the_wrong_type_is_a_bare_500_in_production_and_named_only_in_dev(server):
    api, dev, client, root = server
    # Given user 2's bucket is not a hash any more (a bug or a tampered Redis)
    version = versions.current_version(client, "0")
    bucket = keys.user_bucket("0", version, 2)
    original = client.hgetall(bucket)
    client.delete(bucket)
    client.set(bucket, b"\xff\x07garbage")
    try:
        status, _, body = raw_get(api.port, "/user-items?" + _query(**USER))
        assert status == 500
        assert json.loads(body) == {"error": "true", "msg": "Internal server error"}
        status, _, body = raw_get(dev.port, "/user-items?" + _query(**USER))
        assert status == 500
        message = json.loads(body)["msg"]
        assert message.startswith("Internal server error: ") and "Traceback" not in message
    finally:
        client.delete(bucket)
        client.hset(bucket, mapping=original)
    # The details are in the server's log, for its operators
    assert "Traceback" in (root / "api.log").read_text()
