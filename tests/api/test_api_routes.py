"""Open pages, error bodies (404/405/500/503), probes, the OpenAPI document."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import redis
from api_client import KEY
from publish_fixture import publish_tiny_model

from api import connection, home
from api.reader import Reader
from runtime.signing import signed_headers


def test_home_page_names_service_mode_and_endpoints(make_api, dev_settings):
    page = make_api().get("/", headers={})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Totara Machine Learning Service" in page.text and "production" in page.text
    for path in ("/user-items", "/similar-items", "/health-check", "/livez", "/readyz"):
        assert path in page.text
    assert KEY not in page.text and "127.0.0.1" not in page.text
    assert "development" in make_api(dev_settings).get("/", headers={}).text


def test_wrong_method_is_405_json(api):
    result = api.client.simulate_post("/user-items", headers=signed_headers(KEY))
    assert result.status_code == 405
    assert result.json["error"] == "true" and "GET" in result.json["msg"]


def test_unexpected_error_is_500_json_with_detail_only_in_development(make_api, dev_settings,
                                                                    monkeypatch):
    def broken(self, tenant):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(Reader, "version", broken)
    result = make_api().user_items()
    assert result.status_code == 500
    assert result.json == {"error": "true", "msg": "Internal server error"}
    result = make_api(dev_settings).user_items()
    assert result.status_code == 500 and "secret detail" in result.json["msg"]


def test_redis_down_is_a_503(api):
    publish_tiny_model(api.redis)
    api.redis.connection_pool.connection_kwargs["server"].connected = False
    for result in (api.user_items(), api.similar_items()):
        assert result.status_code == 503
        assert result.json["error"] == "true" and "Redis" in result.json["msg"]
    # This process still answers Totara (the 503s above): it stays behind the load balancer.
    assert api.get("/readyz", headers={}).status_code == 200
    assert api.get("/livez", headers={}).status_code == 200


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_redis_refusing_connections_answers_503_at_once(make_api):
    client = redis.Redis(port=_closed_port(), **connection.client_options())
    started = time.monotonic()
    result = make_api(redis_client=client).user_items()
    assert result.status_code == 503
    assert time.monotonic() - started < 0.5


def test_redis_that_never_answers_gives_503_well_within_two_seconds(make_api):
    # A server that accepts connections and never replies: the read timeout must cut it short.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        client = redis.Redis(port=listener.getsockname()[1], **connection.client_options())
        started = time.monotonic()
        result = make_api(redis_client=client).user_items()
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        for sock in held:
            sock.close()
        listener.close()
    assert result.status_code == 503
    assert elapsed < 1.8


def test_readyz_is_ready_before_any_tenant_is_published(api):
    # Given a fresh installation: Totara must reach /health-check and get "not ready yet"
    ready = api.get("/readyz", headers={})
    assert ready.status_code == 200 and ready.text == "ready"
    assert api.user_items().json["message"] == "The recommender model is not ready yet"
    publish_tiny_model(api.redis)
    assert api.get("/readyz", headers={}).status_code == 200


def test_openapi_document_is_served_and_lists_every_route(api):
    served = api.get("/openapi.json", headers={})
    assert served.status_code == 200
    document = json.loads(home.OPENAPI_FILE.read_text())
    assert served.json == document
    assert document["openapi"].startswith("3.")
    routes = {"/", "/favicon.ico", "/openapi.json", "/user-items", "/similar-items",
              "/health-check", "/livez", "/readyz", "/metrics"}
    # The explorer's paths exist only with a password: test_api_explorer.py checks them.
    assert {p for p in document["paths"] if not p.startswith("/explore")} == routes
    for path in routes:  # every documented path exists in the app
        assert api.get(path).status_code != 404


@pytest.mark.parametrize("path", ["/user-items", "/similar-items"])
def test_openapi_parameters_match_the_validation(path):
    from api.params import SIMILAR_ITEMS_PARAMS, USER_ITEMS_PARAMS

    document = json.loads(home.OPENAPI_FILE.read_text())
    names = [p["name"] for p in document["paths"][path]["get"]["parameters"]]
    assert tuple(names) == (USER_ITEMS_PARAMS if path == "/user-items" else SIMILAR_ITEMS_PARAMS)


def test_probes_answer_head(api):
    assert api.client.simulate_head("/livez").status_code == 200
    assert api.client.simulate_head("/readyz").status_code == 200


def test_factory_without_arguments_reads_the_environment(monkeypatch, base_env):
    import falcon.testing

    from api.app import create_app

    for name, value in {**base_env, "ML_DEV": "1", "ML_BIND": "127.0.0.1:5000",
                        "ML_REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0"}.items():
        monkeypatch.setenv(name, value)
    client = falcon.testing.TestClient(create_app())
    assert "development" in client.simulate_get("/").text
    assert client.simulate_get("/livez").status_code == 200
    assert client.simulate_get("/readyz").status_code == 200  # never touches Redis
    assert client.simulate_get("/user-items", headers=signed_headers(KEY)).status_code == 200
    monkeypatch.delenv("ML_TOTARA_KEY")
    with pytest.raises(SystemExit) as stopped:
        create_app()
    assert stopped.value.code == 2
