"""What a tenant's run or restore reports, and how progress is told: shared by the pipeline, the
light ``restore`` (recommender.publish.restore) and the command line, without model code."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

log = logging.getLogger("recommender.pipeline")  # where runs have always logged their stages


@dataclass
class TenantResult:
    tenant: str
    status: str  # published | not_trained | rejected | failed | skipped | stale | locked (CLI)
    message: str
    version: str | None = None
    algorithm: str = ""
    stage_seconds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    epochs: int = 0
    components: int = 0


class Progress:
    """Receives progress of a run; the CLI prints it, the worker logs it."""

    def stage(self, tenant: str, name: str) -> None:
        log.info("tenant %s: %s", tenant, name)

    def epoch(self, tenant: str, epoch: int, precision: float) -> None:
        log.debug("tenant %s: epoch %d validation P@10 %.4f", tenant, epoch, precision)
