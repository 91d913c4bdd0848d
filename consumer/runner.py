"""One training thread per worker process, fed and drained by the connection thread.

As in dramatiq's worker, the thread that owns the broker connection never runs the slow work: it
hands a job over here and goes on draining the connection (heartbeats, interaction events); when
the job ends its result comes back through a queue and the connection thread acks. kombu
channels are not thread-safe, so this thread never touches the broker.

The thread is a daemon (not a ThreadPoolExecutor's, which the interpreter joins at exit): a
worker told to stop can leave without waiting for an hour-long fit, its message unacked and so
redelivered to another worker.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Finished:
    tag: Any  # what the submitter passed, to find its message again
    value: Any = None
    error: BaseException | None = None
    seconds: float = 0.0


class Runner:
    def __init__(self, name: str = "training") -> None:
        self._jobs: queue.Queue[tuple[Any, Callable[[], Any]] | None] = queue.Queue()
        self._done: queue.Queue[Finished] = queue.Queue()
        self._busy = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._busy.is_set()

    def submit(self, tag: Any, job: Callable[[], Any]) -> bool:
        """Start ``job`` unless one is running already (then False: keep the message for later)."""
        if self._busy.is_set():
            return False
        self._busy.set()
        self._jobs.put((tag, job))
        return True

    def poll(self) -> list[Finished]:
        out = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def wait(self, timeout: float) -> Finished | None:
        """Block up to ``timeout`` for a result (tests and the stop grace period)."""
        try:
            return self._done.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._jobs.put(None)

    def _loop(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            tag, job = item
            started = time.monotonic()
            try:
                finished = Finished(tag, value=job())
            except BaseException as exc:  # noqa: BLE001 - handed to the connection thread
                finished = Finished(tag, error=exc)
            finished.seconds = time.monotonic() - started
            # Cleared before the result is queued, so the connection thread that reads the
            # result may submit the next job at once.
            self._busy.clear()
            self._done.put(finished)
