"""/user-items and /similar-items (contract §2): the checks in the contract's order, the answers.

Hot path: one Redis round trip (the user's or item's bucket field), the pointer being cached. A
user without a published list is not an error: they are answered from their recent interactions
by fold-in, else from the tenant's popularity list (a second round trip, for the events).
"""

from __future__ import annotations

import logging
import threading

import falcon

from api import envelope, lists, params
from api.metrics import COLD_ANSWERS, ColdAnswer
from api.reader import Reader, Version
from published.runs import VersionStatus
from runtime.errors import BadRequest
from runtime.items import TYPE_CODE

log = logging.getLogger(__name__)

_COLD = {lists.Source.FOLD_IN: ColdAnswer.FOLD_IN, lists.Source.POPULAR: ColdAnswer.POPULAR}


class ColdCounters:
    """How many answers were computed in real time: this app's own counts (tests, observers)
    and the Prometheus counter ``totara_ml_cold_user_answers_total`` (all processes)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.fold_in = 0
        self.popular = 0
        self._exported = {kind: COLD_ANSWERS.labels(kind.value) for kind in ColdAnswer}

    def count(self, kind: ColdAnswer) -> None:
        with self._lock:
            setattr(self, kind.value, getattr(self, kind.value) + 1)
        self._exported[kind].inc()


def _model_problem(reader: Reader, version: Version | None, tenant: str) -> str | None:
    """The first three rows of the contract's error table, in its order."""
    if version is None:
        return envelope.NO_TENANT if reader.any_published() else envelope.NOT_READY
    if version.status == VersionStatus.TRAINED:
        return None
    if version.status == VersionStatus.NOT_TRAINED:
        return envelope.NOT_TRAINED.format(tenant=tenant)
    return envelope.NOT_READY


def _respond(resp: falcon.Response, body: bytes) -> None:
    resp.data = body
    resp.content_type = falcon.MEDIA_JSON


class UserItems:
    """GET /user-items?totara_user_id=&item_type=&tenant=&n_items="""

    def __init__(self, reader: Reader, counters: ColdCounters) -> None:
        self.reader = reader
        self.counters = counters

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            query = params.user_items(req.params)
        except BadRequest as exc:
            _respond(resp, envelope.failure(exc.message))
            return
        _respond(resp, self.answer(query))

    def answer(self, query: params.UserItemsQuery) -> bytes:
        version = self.reader.version(query.tenant)
        problem = _model_problem(self.reader, version, query.tenant)
        if problem is not None:
            return envelope.failure(problem)
        type_code = TYPE_CODE.get(query.item_type)
        if type_code is None:
            return envelope.failure(envelope.NO_TYPE)
        found = lists.user_list(self.reader, version, query.user_id, type_code, query.n_items)
        if found.source in _COLD:
            self.counters.count(_COLD[found.source])
            log.debug("tenant %s user %s: %s answer (no published list)", query.tenant,
                      query.user_id, _COLD[found.source].value.replace("_", "-"))
        return envelope.success(found.ids, found.scores, query.n_items)


class SimilarItems:
    """GET /similar-items?totara_item_id=&tenant=&n_items="""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        try:
            query = params.similar_items(req.params)
        except BadRequest as exc:
            _respond(resp, envelope.failure(exc.message))
            return
        _respond(resp, self.answer(query))

    def answer(self, query: params.SimilarItemsQuery) -> bytes:
        version = self.reader.version(query.tenant)
        problem = _model_problem(self.reader, version, query.tenant)
        if problem is not None:
            return envelope.failure(problem)
        found = lists.similar_list(self.reader, version, query.item_id)
        if found is None:
            return envelope.failure(envelope.NO_ITEM)
        return envelope.success(*found, query.n_items)
