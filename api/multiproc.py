"""The folder where gunicorn's workers keep their Prometheus counters (multiprocess mode).

deploy/gunicorn.conf.py calls ``prepare`` in the master before any worker is forked, so every
worker inherits ``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` adds up all of them. The folder
belongs to one run of the master: files left by a previous run would be counted again (and a
counter that goes down confuses Prometheus' rate()), so it is emptied at start.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def prepare(env: MutableMapping[str, str] = os.environ) -> tuple[Path, bool]:
    """Set up the folder (the operator's ``PROMETHEUS_MULTIPROC_DIR``, emptied, or a new one on
    tmpfs); returns it and whether it was made here (then ``remove`` deletes it at exit)."""
    given = env.get(VARIABLE, "").strip()
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink(missing_ok=True)
        return folder, False
    # tmpfs: the workers write these files on every request.
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    folder = Path(tempfile.mkdtemp(prefix="totara-ml-metrics-", dir=base))
    env[VARIABLE] = str(folder)
    return folder, True


def worker_exited(pid: int) -> None:
    """Tell the multiprocess collector a worker is gone (its live gauges are dropped)."""
    from prometheus_client import multiprocess  # after prepare(): the mode is read at import

    multiprocess.mark_process_dead(pid)


def remove(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
