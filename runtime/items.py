"""Totara item types, their families and the ``component<id>`` item keys of the export."""

from __future__ import annotations

import re

# Order of the five 0/1 type columns in item_data_{t}.csv (contract §4); the index of a type in
# this tuple is its code everywhere (packed lists, model arrays).
ITEM_TYPES: tuple[str, ...] = (
    "container_course",
    "container_workspace",
    "engage_article",
    "engage_microlearning",
    "totara_playlist",
)
TYPE_CODE: dict[str, int] = {name: code for code, name in enumerate(ITEM_TYPES)}

# Similar items are answered within the query item's family (contract §2): micro-learning items are
# articles in Totara's tables, so the two share one id space and one family.
FAMILY_OF_TYPE: tuple[int, ...] = (0, 1, 2, 2, 3)
FAMILIES: tuple[tuple[int, ...], ...] = ((0,), (1,), (2, 3), (4,))

_KEY = re.compile(r"^(container_course|container_workspace|engage_article|engage_microlearning"
                  r"|totara_playlist)([0-9]{1,10})$")


def parse_item_key(key: str) -> tuple[int, int] | None:
    """Split ``engage_article42`` into ``(TYPE_CODE["engage_article"], 42)``; None if malformed."""
    match = _KEY.fullmatch(key)
    if match is None:
        return None
    number = int(match.group(2))
    if number >= 2**32:
        return None
    return TYPE_CODE[match.group(1)], number


def item_key(type_code: int, number: int) -> str:
    return f"{ITEM_TYPES[type_code]}{number}"
