"""A page's answer kept for a second or two per process: the open status page under a flood.

The status page costs a few pipelined Redis round trips over every tenant and may probe the
broker; anyone can load it. Kept for ``ttl`` seconds, a flood of loads costs one rendering per
process per ``ttl`` whatever its rate. Wraps the resource without changing how it renders.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import falcon

STATUS_PAGE_TTL = 1.5


@dataclass(frozen=True)
class _Answer:
    at: float
    status: str
    content_type: str
    body: bytes


class CachedPage:
    """GET answered from the last rendering while it is younger than ``ttl`` seconds."""

    def __init__(self, resource: object, ttl: float = STATUS_PAGE_TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.resource = resource
        self.ttl = ttl
        self.clock = clock
        self._answer: _Answer | None = None
        # One rendering at a time: concurrent loads of an expired page wait for it, not redo it.
        self._lock = threading.Lock()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self._lock:
            answer = self._answer
            if answer is None or self.clock() - answer.at >= self.ttl:
                self.resource.on_get(req, resp)
                answer = self._answer = _Answer(self.clock(), resp.status, resp.content_type,
                                                resp.render_body() or b"")
        resp.status = answer.status
        resp.content_type = answer.content_type
        resp.data = answer.body
