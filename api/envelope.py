"""Bodies of /user-items and /similar-items answers (contract §2), built as bytes.

The success body is assembled by hand rather than through a JSON encoder: the hot path then only
formats ids and scores, and the score format (``" .4f"``, as strings) is exact by construction.
"""

from __future__ import annotations

import json

import numpy as np

NOT_READY = "The recommender model is not ready yet"
NO_TENANT = "Bad request: no such tenant"
NOT_TRAINED = ("Message: The model for tenant {tenant} is not trained, probably for "
               "insufficient data")
NO_USER = "Bad request: no such user id"
NO_ITEM = "Bad request: no such item id"
NO_TYPE = "Bad request: no such item type is available"

_SUCCESS_HEAD = b'{"success": true, "items": ['
_SUCCESS_TAIL = b"]}"


def success(ids: np.ndarray, scores: np.ndarray, n_items: int) -> bytes:
    """``{"success": true, "items": [["42", " 0.8123"], ...]}`` with at most ``n_items`` entries."""
    # tolist() turns the whole slice into Python ints/floats in C, cheaper than per-item casts.
    pairs = zip(ids[:n_items].tolist(), scores[:n_items].tolist(), strict=True)
    items = ", ".join([f'["{i}", "{s: .4f}"]' for i, s in pairs])
    return _SUCCESS_HEAD + items.encode("ascii") + _SUCCESS_TAIL


def failure(message: str) -> bytes:
    """The failure envelope; Totara expects it with HTTP 200."""
    return json.dumps({"success": False, "message": message, "items": []}).encode("utf-8")
