"""What a tenant's run reports: its result, and the progress it announces while it runs.

Light on purpose (no numpy, no LightFM): the worker and the command line build and read these
without loading the training code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from published.runs import RunStatus

log = logging.getLogger("recommender.pipeline")

# How the training says what it does, in lines a person can follow: (text, transient).
# Transient lines (an epoch, a batch of lists) may replace each other on a terminal.
Say = Callable[[str, bool], None]


def quiet(text: str, transient: bool) -> None:
    """A ``Say`` that says nothing (the default of the model's functions)."""


@dataclass
class TenantResult:
    tenant: str
    status: RunStatus
    message: str
    version: str | None = None
    algorithm: str = ""
    stage_seconds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    epochs: int = 0
    components: int = 0
    holder: str | None = None  # who holds the tenant's lock, when the status is locked


class Progress:
    """Receives progress of a run; the CLI prints it, the worker logs it."""

    def stage(self, tenant: str, name: str) -> None:
        log.info("tenant %s: %s", tenant, name)

    def phase(self, tenant: str, text: str, transient: bool = False) -> None:
        """A step within a stage (``transient``: one of a series, such as an epoch)."""
        log.log(logging.DEBUG if transient else logging.INFO, "tenant %s: %s", tenant, text)


