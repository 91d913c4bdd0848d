"""Bodies of /user-items and /similar-items answers (contract §2), built as bytes.

The success body is assembled by hand rather than through a JSON encoder: one %-format of a
template per list length formats every id and score in C (half the cost of a per-item f-string
loop), and the score format (``" .4f"``, as strings) is exact by construction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

NOT_READY = "The recommender model is not ready yet"
NO_TENANT = "Bad request: no such tenant"
NOT_TRAINED = ("Message: The model for tenant {tenant} is not trained, probably for "
               "insufficient data")
NO_USER = "Bad request: no such user id"
NO_ITEM = "Bad request: no such item id"
NO_TYPE = "Bad request: no such item type is available"

SCORE = "% .4f"  # a score as Totara receives it (the explorer shows it the same way)
_ENTRY = '["%d", "' + SCORE + '"]'
# Templates by list length (at most MAX_N_ITEMS + 1 of them, a few kB each).
_TEMPLATES: dict[int, str] = {}


def _template(count: int) -> str:
    template = _TEMPLATES.get(count)
    if template is None:
        template = _TEMPLATES[count] = ('{"success": true, "items": ['
                                        + ", ".join([_ENTRY] * count) + "]}")
    return template


def success(ids: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray,
            n_items: int) -> bytes:
    """``{"success": true, "items": [["42", " 0.8123"], ...]}`` with at most ``n_items`` entries
    (``ids`` and ``scores``: arrays, or sequences of Python numbers)."""
    count = min(n_items, len(ids))
    if isinstance(ids, np.ndarray):
        ids, scores = ids[:count].tolist(), scores[:count].tolist()
    values: list[int | float] = [0] * (2 * count)
    values[0::2] = ids[:count]
    values[1::2] = scores[:count]
    return (_template(count) % tuple(values)).encode("ascii")


def failure(message: str) -> bytes:
    """The failure envelope; Totara expects it with HTTP 200."""
    return json.dumps({"success": False, "message": message, "items": []}).encode("utf-8")
