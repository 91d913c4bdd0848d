"""GET /, the status page: per-tenant models and runs, the next retrain, dependencies; no
secrets; still a page when Redis is down."""

from __future__ import annotations

import dataclasses
import time

import redis
from api_client import KEY
from fake_totara import FakeTotara
from publish_fixture import publish_not_trained, publish_tiny_model

from api import connection
from published import keys


def seed(client: redis.Redis) -> None:
    publish_tiny_model(client, "0", trained_at=time.time() - 7200)
    publish_tiny_model(client, "3")
    client.hset(keys.meta("3", client.get(keys.current("3")).decode()),
                mapping={"fit": "incremental", "incremental_from": "1700000000000-00000001"})
    publish_not_trained(client, "4")
    client.hset(keys.last_run("3"), mapping={
        "status": "failed", "at": time.time() - 60,
        "message": "download failed: https://ml:s3cretpass@lms.example/pluginfile.php"})
    client.set(keys.SCHEDULE_LEADER, int(time.time() // 86400) * 86400)


def test_status_page_shows_each_tenant_with_model_facts(api):
    seed(api.redis)
    page = api.get("/", headers={})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    for tenant in ("0", "3", "4"):
        assert f'data-tenant="{tenant}"' in text
    row = text.split('data-tenant="0"')[1].split("</tr>")[0]
    assert "hybrid" in row and "trained" in row and "2.0 h ago" in row
    assert ">3<" in row and ">12<" in row  # users, interactions from the meta hash
    assert "0.3100" in row and "0.4200" in row and "0.8700" in row
    failed = text.split('data-tenant="3"')[1].split("</tr>")[0]
    assert "failed" in failed and "s3cretpass" not in failed
    # A model continued from an earlier one says so; a full fit does not
    assert ">incremental<" in failed and "since 1700000000000-00000001" in failed
    assert "incremental" not in row
    assert "not_trained" in text.split('data-tenant="4"')[1].split("</tr>")[0]
    assert "Next scheduled retrain: <strong>" in text and "every 1440 min" in text
    assert 'id="dep-redis">Model store (Redis): <span class="ok">OK' in text
    assert "in-memory" in text  # the tests' broker


def test_status_page_shows_no_key_url_or_address(api):
    seed(api.redis)
    text = api.get("/", headers={}).text
    assert KEY not in text and "127.0.0.1" not in text and "http://" not in text


def test_status_page_without_tenants_says_so(api):
    text = api.get("/", headers={}).text
    assert 'id="no-tenants"' in text and "not scheduled yet" in text


def test_status_page_still_renders_when_redis_is_down(make_api):
    # A refused connection, with the API's own retry policy (one immediate retry).
    broken = redis.Redis(host="127.0.0.1", port=1, **connection.client_options())
    page = make_api(redis_client=broken).get("/", headers={})
    assert page.status_code == 200
    assert 'id="tenants-unknown"' in page.text
    assert 'Model store (Redis): <span class="bad">DOWN' in page.text
    assert "unknown while Redis cannot be reached" in page.text


def test_status_page_shows_whether_totara_answers_without_its_url(make_api, settings):
    with FakeTotara(KEY) as totara:
        up = make_api(dataclasses.replace(settings, totara_url=totara.url)).get("/", headers={})
        totara.status_mode = "error"
        # A new app: the check is cached per process for BROKER_CACHE_SECONDS.
        down = make_api(dataclasses.replace(settings, totara_url=totara.url)).get("/",
                                                                                 headers={})
    assert 'id="dep-totara">Totara: <span class="ok">OK</span> reachable' in up.text
    assert 'id="dep-totara">Totara: <span class="bad">DOWN' in down.text
    for page in (up.text, down.text):
        assert totara.url not in page and "127.0.0.1" not in page


def test_status_page_checks_totara_at_most_every_half_minute(make_api, settings):
    with FakeTotara(KEY) as totara:
        api = make_api(dataclasses.replace(settings, totara_url=totara.url))
        for _ in range(3):
            api.get("/", headers={})
        checked = [r for r in totara.requests_seen if r[1] == "/totara/webapi/ajax.php"]
    assert len(checked) == 1
