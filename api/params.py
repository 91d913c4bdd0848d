"""Validation of the query strings of /user-items and /similar-items.

The original service crashed (HTTP 500) on a missing or non-numeric ``n_items`` and on
``tenant=algorithm``; here every malformed request gets the failure envelope with a message that
says what is wrong, without echoing the offending value (it may be huge or contain control
characters). Where the contract has a message for the situation (no such tenant / user id), the
message starts with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from api import envelope
from runtime.errors import BadRequest

MAX_N_ITEMS = 1000
USER_ITEMS_PARAMS = ("totara_user_id", "item_type", "tenant", "n_items")
SIMILAR_ITEMS_PARAMS = ("totara_item_id", "tenant", "n_items")
_NAMES = {names: frozenset(names) for names in (USER_ITEMS_PARAMS, SIMILAR_ITEMS_PARAMS)}

# 19 digits cover any database id (signed 64-bit) and keep int() cheap on hostile input.
_MAX_DIGITS = 19
_MAX_ID = 2**63 - 1


# Named tuples, not frozen dataclasses: as immutable, and made at a third of the cost (a frozen
# dataclass sets each field through object.__setattr__), on every request.
class UserItemsQuery(NamedTuple):
    user_id: int
    item_type: str
    tenant: str
    n_items: int


class SimilarItemsQuery(NamedTuple):
    item_id: str
    tenant: str
    n_items: int


def _check_names(params: Mapping[str, str | list[str]], expected: tuple[str, ...]) -> None:
    # The usual query (each expected name once, nothing else) is told apart in C.
    if params.keys() == _NAMES[expected] and list not in map(type, params.values()):
        return
    for name, value in params.items():
        if name not in expected:
            raise BadRequest("Bad request: unknown parameter; expected only "
                             + ", ".join(expected))
        if isinstance(value, list):
            raise BadRequest(f"Bad request: parameter {name} is given more than once")
    for name in expected:
        if name not in params:
            raise BadRequest(f"Bad request: missing parameter {name}")


def _whole(value: str) -> int | None:
    # ASCII digits only: str.isdigit alone would accept other scripts' digits and superscripts.
    if not (value.isascii() and value.isdigit() and len(value) <= _MAX_DIGITS):
        return None
    number = int(value)
    return number if number <= _MAX_ID else None


def _tenant(value: str) -> str:
    number = _whole(value)
    if number is None:
        raise BadRequest(envelope.NO_TENANT + " (tenant must be a whole number, 0 for none)")
    # Normalised so that "007" and "7" name the same Redis keys.
    return str(number)


def _n_items(value: str) -> int:
    number = _whole(value)
    if number is None or not 1 <= number <= MAX_N_ITEMS:
        raise BadRequest(f"Bad request: n_items must be a whole number from 1 to {MAX_N_ITEMS}")
    return number


def user_items(params: Mapping[str, str | list[str]]) -> UserItemsQuery:
    """Check a /user-items query: ``totara_user_id``, ``item_type``, ``tenant``, ``n_items``."""
    _check_names(params, USER_ITEMS_PARAMS)
    tenant = _tenant(params["tenant"])
    user_id = _whole(params["totara_user_id"])
    if user_id is None:
        raise BadRequest(envelope.NO_USER + " (totara_user_id must be a whole number)")
    # item_type is checked later, in the contract's order, against the published model.
    return UserItemsQuery(user_id, params["item_type"], tenant, _n_items(params["n_items"]))


def similar_items(params: Mapping[str, str | list[str]]) -> SimilarItemsQuery:
    """Check a /similar-items query: ``totara_item_id``, ``tenant``, ``n_items``."""
    _check_names(params, SIMILAR_ITEMS_PARAMS)
    tenant = _tenant(params["tenant"])
    # Any string may name an item; a malformed one is answered "no such item id" in order.
    return SimilarItemsQuery(params["totara_item_id"], tenant, _n_items(params["n_items"]))
