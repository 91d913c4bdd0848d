"""Stage timing: the one stopwatch the pipeline's stages and the fits' steps are measured with."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def timed(seconds: dict[str, float], name: str) -> Iterator[None]:
    """Add the block's wall time to ``seconds[name]``, also when it raises."""
    started = time.perf_counter()
    try:
        yield
    finally:
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started


def clocked(items: Iterator[T], seconds: dict[str, float], name: str) -> Iterator[T]:
    """``items`` as they come, the time spent producing each added to ``seconds[name]``."""
    while True:
        with timed(seconds, name):
            item = next(items, None)
        if item is None:
            return
        yield item
