"""Readers of one environment variable each, all failing the same way: a ``ConfigError`` whose
text is one line naming the variable, the value given and what is accepted."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from runtime.errors import ConfigError

_Number = TypeVar("_Number", int, float)


def whole_number(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    return _bounded(env, name, default, int, low, high, f"a whole number from {low} to {high}")


def number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    return _bounded(env, name, default, float, low, high, f"a number from {low:g} to {high:g}")


def _bounded(env: Mapping[str, str], name: str, default: _Number, parse: Callable[[str], _Number],
             low: _Number, high: _Number, expected: str) -> _Number:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        value = None
    # NaN fails the comparison too, so it is refused like any value out of range.
    if value is None or not low <= value <= high:
        raise ConfigError(f"{name}={raw!r}: expected {expected}")
    return value


def url(env: Mapping[str, str], name: str, schemes: tuple[str, ...]) -> str | None:
    raw = env.get(name, "").strip()
    if raw == "":
        return None
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not (parts.netloc or parts.path):
        raise ConfigError(f"{name}={raw!r}: expected a URL starting with "
                          + " or ".join(f"{s}://" for s in schemes))
    return raw


def one_of(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...],
            expected: str, case: Callable[[str], str] = str) -> str:
    value = case(env.get(name, "").strip() or default)
    if value not in choices:
        raise ConfigError(f"{name}={value!r}: expected {expected}")
    return value


def on_off(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip()
    if raw not in ("", "0", "1"):
        raise ConfigError(f"{name}={raw!r}: expected 1 (on) or 0 (off)")
    return default if raw == "" else raw == "1"
