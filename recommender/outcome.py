"""What a tenant's run reports: its result, and the progress it announces while it runs.

Light on purpose (no numpy, no LightFM): the worker and the command line build and read these
without loading the training code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from published.runs import RunStatus

log = logging.getLogger("recommender.pipeline")


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

    def epoch(self, tenant: str, epoch: int, precision: float) -> None:
        log.debug("tenant %s: epoch %d validation P@10 %.4f", tenant, epoch, precision)


