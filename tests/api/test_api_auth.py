"""Contract §1: signed headers, clock skew, User-Agent, open paths, 401 bodies."""

from __future__ import annotations

import time

import pytest
from api_client import KEY

from api.auth import AuthState, TotaraAuth
from runtime.signing import USER_AGENT, signature, signed_headers


def test_signed_request_passes_and_records_its_time(api):
    headers = signed_headers(KEY)
    result = api.get("/user-items", {"totara_user_id": 1, "item_type": "container_course",
                                     "tenant": 0, "n_items": 5}, headers=headers)
    assert result.status_code == 200
    assert api.auth.last_time == int(headers["X-Totara-Time"])


@pytest.mark.parametrize("skew", [-25, 25])
def test_small_clock_skew_is_accepted(api, skew):
    result = api.get("/health-check", headers=signed_headers(KEY, time.time() + skew))
    assert result.status_code == 200


@pytest.mark.parametrize("skew", [-35, 35, -86400])
def test_clock_skew_both_ways_is_refused_with_the_clock_message(api, skew):
    result = api.get("/user-items", headers=signed_headers(KEY, time.time() + skew))
    assert result.status_code == 401
    assert result.text.startswith("Invalid access")
    assert "The clocks were not in sync" in result.text
    assert api.auth.last_time is None


def test_skew_boundary_is_strict():
    auth = TotaraAuth(KEY, dev=False, state=AuthState(), clock=lambda: 1_700_000_030.0)
    stamp_ok, stamp_off = "1700000001", "1700000000"
    assert auth.check(stamp_ok, signature(stamp_ok, KEY), USER_AGENT) is None
    assert "clocks" in auth.check(stamp_off, signature(stamp_off, KEY), USER_AGENT)
    ahead = "1700000060"
    assert "clocks" in auth.check(ahead, signature(ahead, KEY), USER_AGENT)


def _tampered(**changes):
    headers = signed_headers(KEY)
    headers.update(changes)
    return {k: v for k, v in headers.items() if v is not None}


@pytest.mark.parametrize("headers", [
    pytest.param(signed_headers("some-other-key"), id="wrong key"),
    pytest.param(_tampered(**{"X-Totara-Ml-Key": ""}), id="empty key"),
    pytest.param(_tampered(**{"X-Totara-Ml-Key": None}), id="no key"),
    pytest.param(_tampered(**{"X-Totara-Time": None}), id="no time"),
    pytest.param(_tampered(**{"X-Totara-Ml-Key": "é" * 64}), id="non-ascii key"),
    pytest.param(_tampered(**{"User-Agent": "curl/8.0"}), id="wrong user agent"),
    pytest.param(_tampered(**{"User-Agent": None}), id="no user agent"),
    pytest.param({}, id="nothing"),
])
def test_bad_credentials_get_a_plain_401_without_echo(api, headers):
    result = api.get("/user-items", {"tenant": 0}, headers=headers)
    assert result.status_code == 401
    assert result.headers["content-type"].startswith("text/plain")
    assert result.text.startswith("Invalid access")
    assert "clocks" not in result.text
    for value in headers.values():
        if len(value) > 3:
            assert value not in result.text


@pytest.mark.parametrize("stamp", ["1700000000.5", "abc", "", " 17", "1e9", "9" * 40])
def test_non_integer_time_is_a_401_not_a_500(api, stamp):
    headers = {"X-Totara-Time": stamp, "X-Totara-Ml-Key": signature(stamp, KEY),
               "User-Agent": USER_AGENT}
    result = api.get("/user-items", headers=headers)
    assert result.status_code == 401
    assert result.text.startswith("Invalid access")


def test_development_mode_skips_only_the_user_agent_check(make_api, dev_settings):
    api = make_api(dev_settings)
    assert api.get("/health-check", headers=_tampered(**{"User-Agent": "curl/8.0"})
                   ).status_code == 200
    assert api.get("/health-check", headers=_tampered(**{"User-Agent": None})).status_code == 200
    assert api.get("/health-check", headers=signed_headers("wrong")).status_code == 401


def test_empty_configured_key_never_matches():
    auth = TotaraAuth("", dev=True, state=AuthState())
    stamp = str(int(time.time()))
    assert auth.check(stamp, signature(stamp, ""), USER_AGENT) is not None


def test_unknown_path_without_auth_is_401_and_with_auth_404(api):
    assert api.get("/no-such-path", headers={}).status_code == 401
    result = api.get("/no-such-path")
    assert result.status_code == 404
    assert result.json == {"error": "true", "msg": "Not found: no such endpoint"}


@pytest.mark.parametrize("path,status", [("/", 200), ("/favicon.ico", 204), ("/livez", 200),
                                         ("/readyz", 200), ("/openapi.json", 200)])
def test_open_paths_need_no_auth(api, path, status):
    assert api.get(path, headers={}).status_code == status


def test_the_kept_signature_of_the_latest_second_accepts_nothing_else():
    # The expected signature is kept for the latest stamp: a signature of that second must not
    # pass with another stamp, nor another key's signature with that stamp.
    now = 1_700_000_000
    auth = TotaraAuth(KEY, False, AuthState(), clock=lambda: now)
    stamp = str(now)
    assert auth.check(stamp, signature(stamp, KEY), USER_AGENT) is None
    assert auth.check(stamp, signature(stamp, KEY), USER_AGENT) is None
    assert auth.check(str(now + 1), signature(stamp, KEY), USER_AGENT) is not None
    assert auth.check(stamp, signature(stamp, KEY + "x"), USER_AGENT) is not None
    assert auth.check(str(now + 1), signature(str(now + 1), KEY), USER_AGENT) is None
    assert auth.check(stamp, signature(stamp, KEY), USER_AGENT) is None
