"""The operator's explorer: /explore pages and the JSON behind them (/explore/api/...).

Off unless ``ML_EXPLORER_PASSWORD`` is set: its routes are then not even added (404). Every
route asks for that password by HTTP Basic (any user name), compared in constant time; a request
without it gets a 401 that holds no data. Totara's signed headers are not asked for here
(api.auth leaves /explore to this module). Nothing shown comes from the settings: no key or URL.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
from dataclasses import asdict
from typing import Any
from urllib.parse import quote

import falcon

from api import catalogue, explain, pages
from api.reader import Reader, Version
from published.runs import VersionStatus
from runtime.errors import BadRequest as NotFound  # answered as a 404 here

log = logging.getLogger(__name__)

PREFIX = "/explore"
REALM = 'Basic realm="Totara ML explorer", charset="UTF-8"'
_WHOLE = re.compile(r"[0-9]{1,19}\Z")


class Gate:
    """HTTP Basic with the operator password; the user name is not checked."""

    def __init__(self, password: str) -> None:
        self._password = password.encode("utf-8")

    def allows(self, header: str | None) -> bool:
        scheme, _, encoded = (header or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(decoded.partition(b":")[2], self._password)


def _whole(value: str, what: str) -> str:
    if _WHOLE.match(value) is None:
        raise NotFound(f"{what} must be a whole number")
    return str(int(value))


class _Resource:
    """Authentication, the tenant's trained version, and the answer as HTML or JSON."""

    template = ""

    def __init__(self, gate: Gate, reader: Reader, as_json: bool) -> None:
        self.gate = gate
        self.reader = reader
        self.as_json = as_json

    def on_get(self, req: falcon.Request, resp: falcon.Response, **params: str) -> None:
        if not self.gate.allows(req.get_header("Authorization")):
            log.info("explorer: 401 for %.200s from %s", req.path, req.remote_addr)
            resp.status = falcon.HTTP_401
            resp.set_header("WWW-Authenticate", REALM)
            resp.content_type = falcon.MEDIA_TEXT
            resp.text = "Authentication required"
            return
        resp.set_header("Cache-Control", "no-store")  # user-level data stays out of caches
        try:
            values = self.view(req, **params)
        except NotFound as missing:
            self._answer(resp, falcon.HTTP_404, "missing.html", {"message": missing.message})
            return
        self._answer(resp, falcon.HTTP_200, self.template, values)

    def _answer(self, resp: falcon.Response, status: str, template: str,
                values: dict[str, Any]) -> None:
        if self.as_json:
            resp.status = status
            resp.content_type = falcon.MEDIA_JSON
            data = values.get("view", values)
            body = asdict(data) if not isinstance(data, dict) else data
            resp.data = json.dumps(body, separators=(",", ":")).encode()
        else:
            pages.respond(resp, template, status, **values)

    def version(self, tenant: str, trained: bool = True) -> Version:
        tenant = _whole(tenant, "The tenant")
        version = self.reader.version(tenant)
        if version is None or not version.meta:
            raise NotFound(f"Tenant {tenant} has no published model")
        if trained and version.status != VersionStatus.TRAINED:
            raise NotFound(f"The model of tenant {tenant} is not trained (too little data)")
        return version

    def view(self, req: falcon.Request, **params: str) -> dict[str, Any]:
        raise NotImplementedError


class Find(_Resource):
    """The tenant picker and search: ``?tenant=&q=`` goes to the user's or the item's page."""

    template = "find.html"

    @staticmethod
    def _target(tenant: str, query: str) -> str | None:
        if not tenant or not query:
            return None
        kind = "users" if _WHOLE.match(query) else "items"
        return f"{PREFIX}/tenants/{quote(tenant, safe='')}/{kind}/{quote(query, safe='')}"

    def view(self, req: falcon.Request, **params: str) -> dict[str, Any]:
        tenant = (req.get_param("tenant") or "").strip()
        query = (req.get_param("q") or "").strip()
        target = None if self.as_json else self._target(tenant, query)
        if target is not None:
            raise falcon.HTTPSeeOther(target)
        return {"tenants": catalogue.tenants(self.reader), "tenant": tenant, "query": query}


class TenantPage(_Resource):
    template = "tenant.html"

    def view(self, req: falcon.Request, **params: str) -> dict[str, Any]:
        view = catalogue.tenant(self.reader, self.version(params["tenant"], trained=False))
        return {"view": view, "chart": pages.quality_chart(view.quality)}


class LearnerPage(_Resource):
    template = "learner.html"

    def view(self, req: falcon.Request, **params: str) -> dict[str, Any]:
        version = self.version(params["tenant"])
        user_id = int(_whole(params["user_id"], "A Totara user id"))
        return {"view": explain.learner(self.reader, version, user_id)}


class ItemPage(_Resource):
    template = "item.html"

    def view(self, req: falcon.Request, **params: str) -> dict[str, Any]:
        version = self.version(params["tenant"])
        view = catalogue.item(self.reader, version, params["item_id"])
        if view is None:
            raise NotFound("An item id is a type and a number, such as container_course12")
        learner = req.get_param("from") or ""  # the learner page that linked here
        return {"view": view, "learner": learner if _WHOLE.match(learner) else None}


def install(app: falcon.App, password: str | None, reader: Reader) -> None:
    """Add the explorer's routes when a password is configured."""
    if password is None:
        return
    gate = Gate(password)
    for path, resource in (("", Find), ("/tenants/{tenant}", TenantPage),
                           ("/tenants/{tenant}/users/{user_id}", LearnerPage),
                           ("/tenants/{tenant}/items/{item_id}", ItemPage)):
        app.add_route(f"{PREFIX}{path}", resource(gate, reader, as_json=False))
        app.add_route(f"{PREFIX}/api{path or '/tenants'}", resource(gate, reader, as_json=True))
