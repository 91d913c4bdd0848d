"""GET / (an HTML page naming the service, its mode and endpoints), /favicon.ico, /openapi.json.

Open to anyone, so they show nothing configured: no URL, key, tenant or model detail.
"""

from __future__ import annotations

import html
from pathlib import Path

import falcon

ENDPOINTS = (
    ("GET /user-items", "recommended items for a user "
     "(totara_user_id, item_type, tenant, n_items)"),
    ("GET /similar-items", "items similar to an item (totara_item_id, tenant, n_items)"),
    ("GET /health-check", "Totara connectivity, clock variance and model status"),
    ("GET /livez", "liveness probe, no authentication"),
    ("GET /readyz", "readiness probe, no authentication"),
    ("GET /openapi.json", "OpenAPI 3 description of these endpoints"),
)
OPENAPI_FILE = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def render(dev: bool) -> str:
    mode = "development" if dev else "production"
    rows = "\n".join(f"      <li><code>{html.escape(path)}</code>: {html.escape(text)}</li>"
                     for path, text in ENDPOINTS)
    return f"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>Totara Machine Learning Service</title>
  </head>
  <body>
    <h1>Totara Machine Learning Service</h1>
    <p>Recommendations for Totara Learn. Running in <strong>{mode}</strong> mode.</p>
    <p>Every endpoint except this page, the probes and the OpenAPI document requires
      Totara's signed headers (X-Totara-Time, X-Totara-Ml-Key).</p>
    <h2>Endpoints</h2>
    <ul>
{rows}
    </ul>
  </body>
</html>
"""


class Home:
    def __init__(self, dev: bool) -> None:
        self._page = render(dev)

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = self._page


class Favicon:
    """No icon: an empty answer keeps browsers from retrying and logs free of 404s."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.status = falcon.HTTP_204


class OpenApi:
    """Serves docs/openapi.json, read once; 404 when the checkout does not have it."""

    def __init__(self, path: Path = OPENAPI_FILE) -> None:
        self._document = path.read_bytes() if path.is_file() else None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        if self._document is None:
            raise falcon.HTTPNotFound()
        resp.data = self._document
        resp.content_type = falcon.MEDIA_JSON
