"""Progress lines and the result table of the ``train`` and ``restore`` commands."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

from recommender.results import Progress, TenantResult


class ConsoleProgress(Progress):
    """One line per stage; epochs update in place on a terminal, one line each otherwise."""

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.out = out
        self.tty = out.isatty()
        self.started = time.perf_counter()

    def _line(self, text: str, overwrite: bool = False) -> None:
        stamp = f"[{time.perf_counter() - self.started:7.1f}s] "
        if overwrite and self.tty:
            self.out.write("\r\033[K" + stamp + text)
        else:
            self.out.write(("\n" if self.tty else "") + stamp + text + ("" if self.tty else "\n"))
        self.out.flush()

    def stage(self, tenant: str, name: str) -> None:
        self._line(f"tenant {tenant}: {name}")

    def epoch(self, tenant: str, epoch: int, precision: float) -> None:
        self._line(f"tenant {tenant}: fit epoch {epoch:3d}  validation P@10 {precision:.4f}",
                   overwrite=True)

    def finished(self, result: TenantResult) -> None:
        self._line(f"tenant {result.tenant}: {result.status} {result.message}")
        if self.tty:
            self.out.write("\n")


def print_results(results: Sequence[TenantResult], out: TextIO = sys.stdout) -> None:
    columns = ["tenant", "status", "users", "items", "interactions", "epochs", "dim", "P@10",
               "R@10", "AUC", "seconds by stage"]
    rows = []
    for r in results:
        metric = r.metrics.get
        rows.append([
            r.tenant, r.status, str(r.counts.get("users", "")), str(r.counts.get("items", "")),
            str(r.counts.get("interactions", "")), str(r.epochs or ""), str(r.components or ""),
            *(f"{metric(m):.4f}" if m in r.metrics else "" for m in
              ("precision_at_10", "recall_at_10", "auc")),
            " ".join(f"{k} {v:.1f}" for k, v in r.stage_seconds.items()),
        ])
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c)
              for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), file=out)
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)), file=out)
    for r in results:
        if r.status in ("failed", "stale", "not_trained", "locked") and r.message:
            print(f"tenant {r.tenant}: {r.message}", file=out)
