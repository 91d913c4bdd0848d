"""The operator's explorer over JSON: off without a password, 401 without the right one, and
lists that are exactly what /user-items and /similar-items serve, with their reasons."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from api_client import Api
from explorer_fixture import KEY, PASSWORD, basic, environment, train_demo
from hypothesis import given, settings
from hypothesis import strategies as st
from publish_fixture import publish_not_trained

from published import explore, keys, versions
from published.savedmodel import ItemVectors
from runtime import config
from runtime.errors import ConfigError
from runtime.items import ITEM_TYPES
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_demo(tmp_path_factory.mktemp("explorer"))


@pytest.fixture
def api(trained) -> Api:
    return Api(trained.settings, trained.client())


def _json(api: Api, path: str) -> dict:
    answer = api.get(path, headers=basic())
    assert answer.status_code == 200, answer.text
    return answer.json


def _users(trained, tenant: str = "0") -> list[int]:
    return [int(u) for u in trained.exports[tenant].users.ids[:4]]


def test_without_a_password_the_explorer_is_not_there(trained, tmp_path):
    plain = config.from_env(environment(tmp_path))
    api = Api(plain, trained.client())
    for path in ("/explore", "/explore/tenants/0", "/explore/api/tenants/0/users/1"):
        answer = api.get(path, headers=basic())
        assert answer.status_code == 404, path


@pytest.mark.parametrize("headers", [
    {}, basic("wrong-password-0123456"), basic(PASSWORD[:-1]), basic(PASSWORD + "x"),
    {"Authorization": "Basic !!!not-base64"}, {"Authorization": f"Bearer {PASSWORD}"},
    {"Authorization": "Basic " + "QUJD" * 2000}])
def test_a_wrong_or_missing_password_gets_401_and_no_data(api, trained, headers):
    user = _users(trained)[0]
    for path in ("/explore", "/explore/tenants/0", f"/explore/api/tenants/0/users/{user}",
                 "/explore/tenants/0/items/container_course1", "/explore/api/tenants"):
        answer = api.get(path, headers=headers)
        assert answer.status_code == 401, path
        assert answer.headers["www-authenticate"].startswith("Basic ")
        assert answer.text == "Authentication required"


def test_the_user_name_is_not_checked_and_totara_signatures_are_not_asked(api):
    assert api.get("/explore/api/tenants", headers=basic(user="")).status_code == 200
    assert api.get("/explore/api/tenants", headers=basic(user="anyone")).json == {
        "tenants": ["0", "1"], "tenant": "", "query": ""}


def test_a_short_password_is_refused_with_one_line_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=r"^ML_EXPLORER_PASSWORD is 15 characters long"):
        config.from_env(environment(tmp_path, ML_EXPLORER_PASSWORD="x" * 15))
    env = {**os.environ, **environment(tmp_path, ML_EXPLORER_PASSWORD="short-secret")}
    started = subprocess.run([sys.executable, "-c", "import api.app; api.app.create_app()"],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 2
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1 and "ML_EXPLORER_PASSWORD" in lines[0] and "16" in lines[0]
    assert "short-secret" not in started.stderr


def _user_items(api: Api, user: int, item_type: str, tenant: str = "0") -> list[list[str]]:
    return api.user_items(user, item_type, tenant, 10).json["items"]


def test_learner_lists_are_what_user_items_serves(api, trained):
    for tenant in ("0", "1"):
        for user in [*_users(trained, tenant), 987654321]:
            view = _json(api, f"/explore/api/tenants/{tenant}/users/{user}")
            assert [t["item_type"] for t in view["lists"]] == list(ITEM_TYPES)
            for listed in view["lists"]:
                shown = [[str(r["item"]["id"]), r["score"]] for r in listed["items"]]
                assert shown == _user_items(api, user, listed["item_type"], tenant)


def _model(api: Api, tenant: str) -> ItemVectors:
    version = versions.current_version(api.redis, tenant)
    fields = {k.decode(): v for k, v in api.redis.hgetall(keys.model(tenant, version)).items()}
    return ItemVectors.from_model_hash(fields)


def test_each_reason_is_the_nearest_item_of_the_learners_history(api, trained):
    model = _model(api, "0")
    row = {(int(t), int(n)): i for i, (t, n) in enumerate(zip(model.types, model.numbers,
                                                               strict=True))}
    unit = model.embeddings / np.linalg.norm(model.embeddings, axis=1, keepdims=True)
    user = _users(trained)[0]
    view = _json(api, f"/explore/api/tenants/0/users/{user}")
    assert view["in_model"] and view["history"]
    times = [h["time"] for h in view["history"]]
    assert times == sorted(times, reverse=True)
    history = [row[(ITEM_TYPES.index(h["item"]["item_type"]), h["item"]["id"])]
               for h in view["history"]]
    for listed in view["lists"]:
        for rec in listed["items"]:
            target = row[(ITEM_TYPES.index(listed["item_type"]), rec["item"]["id"])]
            sims = unit[history] @ unit[target]
            assert rec["reason"] == "closest to an item of their history"
            assert rec["similarity"] == pytest.approx(float(sims.max()), abs=1e-3)
            because = (ITEM_TYPES.index(rec["because"]["item_type"]), rec["because"]["id"])
            assert sims[history.index(row[because])] == pytest.approx(sims.max(), abs=1e-5)


def test_fallback_learners_are_explained_by_recent_activity_or_popularity(api, trained):
    unknown = _json(api, "/explore/api/tenants/0/users/987654321")
    assert not unknown["in_model"] and "popularity" in unknown["note"]
    assert {r["reason"] for t in unknown["lists"] for r in t["items"]} == {
        "popular in this tenant"}
    item = trained.exports["0"].items.keys[0]
    api.redis.rpush(keys.recent("0", 55555), json.dumps({"item_id": item, "rating": 1,
                                                         "timestamp": 1}))
    folded = _json(api, "/explore/api/tenants/0/users/55555")
    assert folded["recent"][0]["key"] == item and "recent interactions" in folded["note"]
    reasons = {r["reason"] for t in folded["lists"] for r in t["items"]}
    assert reasons == {"from their recent activity"}


def test_item_similar_items_are_what_similar_items_serves(api, trained):
    for key in trained.exports["0"].items.keys[:12]:
        view = _json(api, f"/explore/api/tenants/0/items/{key}")
        served = api.similar_items(key, 0, 10).json["items"]
        assert [[str(s["item"]["id"]), s["score"]] for s in view["similar"]] == served
        assert view["info"]["learners"] >= 0


def test_the_tenant_view_has_figures_and_the_quality_of_each_version(api):
    view = _json(api, "/explore/api/tenants/1")
    assert view["status"] == "trained" and 0 < view["coverage"] <= 1
    assert view["quality"][-1]["version"] == view["version"]
    assert view["most_recommended"][0]["users"] >= view["most_recommended"][-1]["users"]


def test_unknown_tenants_users_and_items_are_404s_that_say_why(api):
    assert api.get("/explore/api/tenants/42", headers=basic()).json == {
        "message": "Tenant 42 has no published model"}
    for path in ("/explore/api/tenants/x", "/explore/api/tenants/0/users/abc",
                 "/explore/api/tenants/0/items/nonsense"):
        assert api.get(path, headers=basic()).status_code == 404


def test_the_find_form_goes_to_the_learner_or_the_item(api):
    answer = api.get("/explore", {"tenant": "0", "q": "12"}, headers=basic())
    assert answer.status_code == 303
    assert answer.headers["location"].endswith("/explore/tenants/0/users/12")
    answer = api.get("/explore", {"tenant": "0", "q": "engage_article3"}, headers=basic())
    assert answer.headers["location"].endswith("/explore/tenants/0/items/engage_article3")


def test_pages_never_show_the_key_the_urls_or_the_password(api, trained):
    user = _users(trained)[0]
    for path in ("/explore", "/explore/tenants/0", f"/explore/tenants/0/users/{user}",
                 f"/explore/tenants/0/items/{trained.exports['0'].items.keys[0]}"):
        text = api.get(path, headers=basic()).text
        assert KEY not in text and PASSWORD not in text and "127.0.0.1" not in text


@settings(max_examples=30, deadline=None)
@given(text=st.text(min_size=1, max_size=80), label=st.text(min_size=1, max_size=20))
def test_item_text_and_labels_are_escaped_whatever_they_hold(trained, text, label):
    api = Api(trained.settings, trained.client())
    key = trained.exports["0"].items.keys[1]
    number = int(trained.exports["0"].items.numbers[1])
    version = versions.current_version(api.redis, "0")
    hostile = explore.ItemInfo([f"<b>{label}"], f"<script>{text}</script>", 1, 0, [])
    api.redis.hset(keys.item_info_bucket("0", version, number), key, hostile.to_bytes())
    page = api.get(f"/explore/tenants/0/items/{key}", headers=basic()).text
    assert "<script>" not in page and "<b>" not in page


def test_every_documented_explorer_path_is_served(api, trained):
    document = json.loads((ROOT / "docs" / "openapi.json").read_text())
    documented = sorted(p for p in document["paths"] if p.startswith("/explore"))
    assert len(documented) == 8
    user, item = _users(trained)[0], trained.exports["0"].items.keys[0]
    for path in documented:
        concrete = path.format(tenant="0", user_id=user, item_id=item)
        assert api.get(concrete, headers=basic()).status_code == 200, concrete


def test_a_tenant_too_small_to_train_has_a_page_and_no_learner_pages(api):
    publish_not_trained(api.redis, "4")
    tenant = api.get("/explore/tenants/4", headers=basic())
    assert tenant.status_code == 200 and "not_trained" in tenant.text
    assert 'id="no-figures"' in tenant.text
    learner = api.get("/explore/api/tenants/4/users/3", headers=basic())
    assert learner.status_code == 404 and "not trained" in learner.json["message"]
