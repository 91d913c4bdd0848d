"""/user-items and /similar-items (contract §2): the checks in the contract's order, the answers.

Hot path: one Redis round trip (the user's or item's bucket field), the pointer being cached. A
user without a published list is not an error: they are answered from their recent interactions
by fold-in, else from the tenant's popularity list (a second round trip, for the events).
"""

from __future__ import annotations

import logging
import threading

import falcon
import numpy as np

from api import envelope, params
from api.metrics import COLD_ANSWERS, ColdAnswer
from api.reader import Reader, Version
from published import packing
from published.runs import VersionStatus
from runtime.errors import BadRequest
from runtime.items import TYPE_CODE, item_key, parse_item_key

log = logging.getLogger(__name__)

_ARTICLE = TYPE_CODE["engage_article"]
_MICRO = TYPE_CODE["engage_microlearning"]


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
        blob = self.reader.user_lists(version, query.user_id)
        if blob is not None:
            ids, scores = packing.unpack(blob, type_code)
            return envelope.success(ids, scores, query.n_items)
        ids, scores = self._cold(version, query, type_code)
        return envelope.success(ids, scores, query.n_items)

    def _cold(self, version: Version, query: params.UserItemsQuery,
              type_code: int) -> tuple[np.ndarray, np.ndarray]:
        events = self.reader.recent_events(query.tenant, query.user_id)
        if events:
            model = self.reader.model(version)
            found = model.recommend(events, type_code, query.n_items) if model else None
            if found is not None:
                self.counters.count(ColdAnswer.FOLD_IN)
                log.debug("tenant %s user %s: fold-in from %d recent events", query.tenant,
                          query.user_id, len(events))
                return found
        self.counters.count(ColdAnswer.POPULAR)
        log.debug("tenant %s user %s: no list and no usable events, popularity list",
                  query.tenant, query.user_id)
        return version.popular_list(type_code)


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
        parsed = parse_item_key(query.item_id)
        if parsed is None:
            return envelope.failure(envelope.NO_ITEM)
        type_code, number = parsed
        fields = [query.item_id]
        if type_code == _ARTICLE:
            # Totara sends engage_article<id> for micro-learning too; both share a bucket, so
            # the retry is a second field of the same HMGET.
            fields.append(item_key(_MICRO, number))
        blob = next((b for b in self.reader.similar_lists(version, number, fields) if b), None)
        if blob is None:
            return envelope.failure(envelope.NO_ITEM)
        ids, scores = packing.unpack(blob, 0)
        itself = ids == number
        if itself.any():  # the publisher never stores it; this keeps the promise regardless
            ids, scores = ids[~itself], scores[~itself]
        return envelope.success(ids, scores, query.n_items)
