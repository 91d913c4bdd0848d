"""Contract §1: every request but a few open paths carries Totara's signed headers.

Runs as middleware before routing, so an unsigned request to an unknown path is a 401, not a 404.
A failure is a plain-text 401 that never repeats the request headers (the original's quirk).
"""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Callable

import falcon

from runtime.signing import USER_AGENT, signature

log = logging.getLogger(__name__)

# Paths anyone may read: they disclose nothing secret. /metrics too, as Prometheus cannot sign.
OPEN_PATHS = frozenset({"/", "/favicon.ico", "/livez", "/readyz", "/openapi.json", "/metrics"})
# The operator's explorer asks for its own password (api.explorer), never Totara's signature.
EXPLORER = "/explore"
MAX_SKEW_SECONDS = 30
INVALID = "Invalid access"
CLOCKS = "Invalid access. The clocks were not in sync"

# An optional sign and up to 15 digits: anything else (a float, a date) is refused as a 401
# before int() sees it, so it cannot become a 500.
_STAMP = re.compile(r"-?[0-9]{1,15}\Z")


class AuthState:
    """The X-Totara-Time of the last authenticated request, for /health-check's variance."""

    def __init__(self) -> None:
        self.last_time: int | None = None


class TotaraAuth:
    """Falcon middleware checking X-Totara-Time, X-Totara-Ml-Key and the User-Agent."""

    def __init__(self, shared_secret: str | None, dev: bool, state: AuthState,
                 clock: Callable[[], float] = time.time) -> None:
        # An empty configured secret never matches (contract §1); None disables every request.
        self._secret = shared_secret or None
        self._check_agent = not dev
        self._state = state
        self._clock = clock
        # Totara's stamps are whole seconds: the signature expected for the latest one is kept,
        # so a busy second hashes once instead of once per request.
        self._expected: tuple[str, bytes] = ("", b"")

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        path = req.path
        if path in OPEN_PATHS or path == EXPLORER or path.startswith(EXPLORER + "/"):
            return
        # Read from the WSGI environ directly (as req.get_header would, at a third of the cost).
        env = req.env
        failure = self.check(env.get("HTTP_X_TOTARA_TIME"), env.get("HTTP_X_TOTARA_ML_KEY"),
                             env.get("HTTP_USER_AGENT"))
        if failure is not None:
            # The headers are not logged either: the key header is a valid signature replayable
            # for 30 s. A clock failure means Totara itself is locked out: worth a warning.
            level = logging.WARNING if failure is CLOCKS else logging.INFO
            log.log(level, "401 for %s %.200s from %s: %s", req.method, req.path, req.remote_addr,
                    failure)
            resp.status = falcon.HTTP_401
            resp.content_type = falcon.MEDIA_TEXT
            resp.text = failure
            resp.complete = True

    def check(self, stamp: str | None, sent: str | None, agent: str | None) -> str | None:
        """None when the headers (time, signature, agent) are valid, else the text of the 401."""
        if self._secret is None or not stamp or not sent or _STAMP.match(stamp) is None:
            return INVALID
        if self._check_agent and agent != USER_AGENT:
            return INVALID
        cached_stamp, expected = self._expected  # one read: threads may replace it meanwhile
        if cached_stamp != stamp:
            expected = signature(stamp, self._secret).encode("ascii")
            self._expected = (stamp, expected)
        if not hmac.compare_digest(expected, sent.encode("utf-8", "replace")):
            return INVALID
        # The clock is judged only once the signature holds: telling a caller without the key
        # that its clock is off would help nobody but an attacker.
        sent_at = int(stamp)
        if abs(self._clock() - sent_at) >= MAX_SKEW_SECONDS:
            return CLOCKS
        self._state.last_time = sent_at
        return None
