"""The open status page under a flood: one rendering per process per 1.5 s, whatever the rate."""

from __future__ import annotations

import falcon
import falcon.testing

from api import status
from api.pagecache import STATUS_PAGE_TTL, CachedPage


def test_a_flood_of_status_page_loads_reads_redis_once(make_api, monkeypatch):
    # Given the app as deployed (the status page cached for STATUS_PAGE_TTL seconds)
    collected = []
    real_collect = status.collect

    def counting(*args, **kwargs):
        collected.append(1)
        return real_collect(*args, **kwargs)

    monkeypatch.setattr(status, "collect", counting)
    api = make_api(status_page_ttl=STATUS_PAGE_TTL)
    # When the open page is loaded 200 times at once
    pages = {api.get("/", headers={}).text for _ in range(200)}
    # Then Redis was read for one of them, and every load got the same full page
    assert len(collected) == 1
    assert len(pages) == 1 and "Totara Machine Learning Service" in pages.pop()
    assert 1.0 <= STATUS_PAGE_TTL <= 2.0


class _Counting:
    def __init__(self) -> None:
        self.renders = 0

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        self.renders += 1
        resp.content_type = falcon.MEDIA_HTML
        resp.text = f"<p>render {self.renders}</p>"


def test_the_cached_page_is_renewed_once_it_is_older_than_its_ttl():
    now = [100.0]
    page = _Counting()
    app = falcon.App()
    app.add_route("/", CachedPage(page, ttl=1.5, clock=lambda: now[0]))
    client = falcon.testing.TestClient(app)
    assert client.simulate_get("/").text == "<p>render 1</p>"
    now[0] += 1.4
    answer = client.simulate_get("/")
    assert answer.text == "<p>render 1</p>" and answer.headers["content-type"].startswith(
        "text/html")
    now[0] += 0.1
    assert client.simulate_get("/").text == "<p>render 2</p>"
    assert page.renders == 2
