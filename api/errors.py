"""JSON bodies for errors outside the two envelopes: ``{"error": "true", "msg": "..."}`` (§2).

404 and 405 come from Falcon's routing; an unreachable Redis or a Redis Cluster failing over is a
503 (the request may succeed a moment later, and Totara falls back to its cache either way);
anything else is a 500 that says more only in development mode.
"""

from __future__ import annotations

import json
import logging

import falcon

from api.connection import UNAVAILABLE

log = logging.getLogger(__name__)

_MESSAGES = {
    404: "Not found: no such endpoint",
    405: "Method not allowed: the endpoints of this service answer GET only",
}


def body(message: str) -> bytes:
    return json.dumps({"error": "true", "msg": message}).encode("utf-8")


def serialize_http_error(req: falcon.Request, resp: falcon.Response,
                         exc: falcon.HTTPError) -> None:
    """Replaces Falcon's serializer so every HTTPError has the contract's shape, in JSON."""
    message = _MESSAGES.get(exc.status_code) or exc.title or "Error"
    resp.data = body(message)
    resp.content_type = falcon.MEDIA_JSON


class ErrorHandlers:
    """Handlers for exceptions escaping a resource; ``dev`` adds the exception to the body."""

    def __init__(self, dev: bool) -> None:
        self.dev = dev

    def install(self, app: falcon.App) -> None:
        app.set_error_serializer(serialize_http_error)
        app.add_error_handler(Exception, self.unexpected)
        app.add_error_handler(UNAVAILABLE, self.store_unavailable)

    def store_unavailable(self, req: falcon.Request, resp: falcon.Response, exc: Exception,
                          params: dict) -> None:
        log.warning("%s %s: Redis unavailable: %s", req.method, req.path, exc)
        resp.status = falcon.HTTP_503
        message = "Service unavailable: the model store (Redis) cannot be reached"
        resp.data = body(f"{message}: {exc}" if self.dev else message)
        resp.content_type = falcon.MEDIA_JSON

    def unexpected(self, req: falcon.Request, resp: falcon.Response, exc: Exception,
                   params: dict) -> None:
        if isinstance(exc, falcon.HTTPError):  # Falcon's own errors keep their status
            raise exc
        log.exception("%s %s failed", req.method, req.path)
        resp.status = falcon.HTTP_500
        message = "Internal server error"
        if self.dev:
            message = f"{message}: {type(exc).__name__}: {exc}"
        resp.data = body(message)
        resp.content_type = falcon.MEDIA_JSON
