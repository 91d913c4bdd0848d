"""Security properties of the API: constant-time signature comparison, nothing secret logged,
nothing of the configuration disclosed by any endpoint, in production or development mode."""

from __future__ import annotations

import logging
import socket

import falcon.testing
import pytest
from api_client import KEY
from explorer_fixture import basic

from api import auth
from api.app import create_app
from runtime.config import from_env
from runtime.signing import USER_AGENT, signature, signed_headers

SECRET_PASSWORDS = ("redis-pass-7f3a", "amqp-pass-91bc")
EXPLORER_PASSWORD = "explorer-pass-5d2e-0123"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_every_signature_check_goes_through_a_constant_time_comparison(monkeypatch):
    compared: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    checker = auth.TotaraAuth(KEY, dev=False, state=auth.AuthState(), clock=lambda: 1.7e9)
    stamp = "1700000000"
    good = signature(stamp, KEY)
    # Right, wrong, a prefix of the right one, and a longer one: all compared the same way.
    for given in (good, "0" * 64, good[:10], good + "00"):
        checker.check(stamp, given, USER_AGENT)
    assert [b for _, b in compared] == [g.encode() for g in (good, "0" * 64, good[:10],
                                                             good + "00")]
    assert all(a == good.encode() for a, _ in compared)


@pytest.fixture(params=["production", "development"])
def exposed(request, base_env, fake_redis):
    """An app whose Redis and broker URLs hold passwords, both unreachable (errors mention them
    if anything does)."""
    env = {**base_env, "ML_REDIS_URL": f"redis://:{SECRET_PASSWORDS[0]}@127.0.0.1:"
                                       f"{_closed_port()}/0",
           "ML_BROKER_URL": f"amqp://ml:{SECRET_PASSWORDS[1]}@127.0.0.1:{_closed_port()}//",
           "ML_EXPLORER_PASSWORD": EXPLORER_PASSWORD}
    if request.param == "development":
        env.update(ML_DEV="1", ML_BIND="127.0.0.1:5000")
    return falcon.testing.TestClient(create_app(from_env(env)))


PATHS = ["/", "/favicon.ico", "/openapi.json", "/livez", "/readyz", "/metrics", "/health-check",
         "/user-items?totara_user_id=1&item_type=container_course&tenant=0&n_items=5",
         "/similar-items?totara_item_id=engage_article1&tenant=0&n_items=5", "/nowhere",
         "/explore", "/explore/tenants/0", "/explore/tenants/0/users/1",
         "/explore/api/tenants/0/items/engage_article1"]


@pytest.mark.parametrize("path", PATHS)
def test_no_endpoint_discloses_the_key_or_the_passwords_in_the_urls(exposed, path, caplog):
    caplog.set_level(logging.DEBUG)
    for headers in (signed_headers(KEY), {}, basic(EXPLORER_PASSWORD)):
        result = exposed.simulate_get(path.split("?")[0], query_string=path.partition("?")[2],
                                      headers=headers)
        text = result.text + " ".join(f"{k}: {v}" for k, v in result.headers.items())
        assert result.status_code != 500, text
        for secret in (KEY, *SECRET_PASSWORDS, EXPLORER_PASSWORD):
            assert secret not in text
    # Nor do the logs of these requests (they go to files operators share).
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    for secret in (KEY, *SECRET_PASSWORDS, EXPLORER_PASSWORD):
        assert secret not in logged


def test_the_key_and_the_signatures_are_never_logged(make_api, caplog):
    api = make_api()
    caplog.set_level(logging.DEBUG)
    sent = []
    for headers in (signed_headers(KEY), signed_headers("wrong-key-000000"),
                    signed_headers(KEY, 1_000_000_000)):  # valid but far too old
        sent.append(headers["X-Totara-Ml-Key"])
        api.get("/user-items", {"totara_user_id": 1, "item_type": "container_course",
                                "tenant": 0, "n_items": 5}, headers=headers)
        api.get("/health-check", headers=headers)
    logged = caplog.text + " ".join(str(r.args) for r in caplog.records)
    assert "401" in logged  # the refusals are logged...
    for secret in (KEY, *sent):
        assert secret not in logged  # ...without the key or any signature
