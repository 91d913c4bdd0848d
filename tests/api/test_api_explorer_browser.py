"""The explorer in a real browser: headless Chromium (as the status page's test drives it) opens
each page for the demo tenants, follows a link from a learner to an item and back, and the lists
and reasons it rendered are checked against /user-items, /similar-items and the explorer's JSON.
Screenshots go to data/screenshots/explorer-*.png (README shows copies from docs/screenshots/).

The browser logs in the way an operator's script would: HTTP Basic credentials in the URL.
"""

from __future__ import annotations

import html
import re
import threading
from urllib.parse import urlsplit
from wsgiref.simple_server import make_server

import pytest
from api_client import Api
from explorer_fixture import PASSWORD, basic, train_demo
from test_api_status_browser import (  # chromium: the fixture, skipping without the browser
    SCREENSHOT_DIR,
    _headless,
    _QuietHandler,
    _Server,
    chromium,  # noqa: F401
)

_ROW = re.compile(
    r'<tr class="(rec|similar)" data-item="([^"]+)" data-score="([^"]+)">(.*?)</tr>', re.S)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_demo(tmp_path_factory.mktemp("explorer-browser"), versions=3)


@pytest.fixture
def served(trained):
    """The app on a loopback port; yields (api for signed calls, base URL with credentials)."""
    api = Api(trained.settings, trained.client())
    server = make_server("127.0.0.1", 0, api.app, server_class=_Server,
                         handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api, f"http://operator:{PASSWORD}@127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


class Browser:
    def __init__(self, executable: str, profile, base: str) -> None:
        self.chromium, self.profile, self.base = executable, profile, base
        self.runs = 0

    def dom(self, path: str) -> str:
        self.runs += 1
        done = _headless(self.chromium, self.profile / f"dom{self.runs}", "--dump-dom",
                         self.base + path)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    def screenshot(self, path: str, name: str) -> None:
        self.runs += 1
        target = SCREENSHOT_DIR / f"explorer-{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        _headless(self.chromium, self.profile / f"shot{self.runs}", f"--screenshot={target}",
                  self.base + path)
        assert target.is_file() and target.stat().st_size > 10_000


def _sections(dom: str) -> dict[str, list[tuple[str, str, str]]]:
    """Per item type, the rendered rows (item key, score, the reason cell's text)."""
    found = {}
    for match in re.finditer(r'<section class="list" data-type="([a-z_]+)"[^>]*>(.*?)</section>',
                             dom, re.S):
        found[match.group(1)] = [(key, score, html.unescape(re.sub(r"<[^>]+>", "", cells)))
                                 for _, key, score, cells in _ROW.findall(match.group(2))]
    return found


def _check_learner(api: Api, dom: str, tenant: str, user: int) -> None:
    view = api.get(f"/explore/api/tenants/{tenant}/users/{user}", headers=basic()).json
    sections = _sections(dom)
    assert list(sections) == [t["item_type"] for t in view["lists"]]
    for listed in view["lists"]:
        served = api.user_items(user, listed["item_type"], tenant, 10).json["items"]
        rows = sections[listed["item_type"]]
        assert [[re.sub(r"\D", "", key), score] for key, score, _ in rows] == served
        for (_, _, reason), rec in zip(rows, listed["items"], strict=True):
            assert rec["reason"] in reason
            if rec["because"]:
                assert rec["because"]["key"] in reason


def test_chromium_walks_learner_item_and_back_with_the_served_lists(chromium, served,  # noqa: F811
                                                                    trained, tmp_path):
    api, base = served
    browser = Browser(chromium, tmp_path, base)
    assert 'href="/explore/tenants/1"' in browser.dom("/explore")
    for tenant in ("0", "1"):
        page = browser.dom(f"/explore/tenants/{tenant}")
        assert '<svg class="chart" id="quality-chart"' in page and 'id="coverage"' in page
        assert page.count("<circle ") == (3 if tenant == "0" else 1)
    user = int(trained.exports["0"].users.ids[0])
    learner = browser.dom(f"/explore/tenants/0/users/{user}")
    _check_learner(api, learner, "0", user)
    link = re.search(r'<tr class="rec"[^>]*>.*?<a class="item" href="([^"]+)"', learner, re.S)
    item_page = browser.dom(html.unescape(link.group(1)))
    key = urlsplit(html.unescape(link.group(1))).path.rsplit("/", 1)[1]
    served_similar = api.similar_items(key, 0, 10).json["items"]
    assert [[re.sub(r"\D", "", k), s] for _, k, s, _ in _ROW.findall(item_page)] == served_similar
    back = re.search(r'<a id="back" href="([^"]+)"', item_page).group(1)
    assert back == f"/explore/tenants/0/users/{user}"
    _check_learner(api, browser.dom(back), "0", user)
    cold = browser.dom("/explore/tenants/1/users/987654321")
    assert "popularity lists" in cold and "popular in this tenant" in cold
    _check_learner(api, cold, "1", 987654321)
    browser.screenshot("/explore/tenants/0", "tenant")
    browser.screenshot(f"/explore/tenants/0/users/{user}", "learner")
    browser.screenshot(html.unescape(link.group(1)), "item")
