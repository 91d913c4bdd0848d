"""Progress lines and the result table of the ``train`` and ``restore`` commands."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Sequence
from typing import TextIO

from published.runs import RunStatus
from recommender.outcome import Progress, TenantResult

# Statuses whose message the table cannot show and an operator needs.
_EXPLAINED = (RunStatus.FAILED, RunStatus.STALE, RunStatus.NOT_TRAINED, RunStatus.LOCKED)


class ConsoleProgress(Progress):
    """One line per stage and per step; a series (epochs, batches of lists) updates in place
    on a terminal, one line each otherwise. Nothing stays silent for long: after ``quiet_after``
    seconds without a line within a stage, a line says what is still running and for how long.
    """

    def __init__(self, out: TextIO | None = None, quiet_after: float = 5.0) -> None:
        self.out = out or sys.stderr  # read at call time: tests and callers may replace it
        self.tty = self.out.isatty()
        self.started = time.perf_counter()
        self.quiet_after = quiet_after
        self.lock = threading.Lock()
        self.last_line = self.started
        self.running: tuple[str, str, float] | None = None  # (tenant, last step, its start)
        self.heartbeat = threading.Thread(target=self._beat, daemon=True, name="progress")
        self.heartbeat.start()

    def _line(self, text: str, overwrite: bool = False) -> None:
        with self.lock:
            now = time.perf_counter()
            stamp = f"[{now - self.started:7.1f}s] "
            if overwrite and self.tty:
                self.out.write("\r\033[K" + stamp + text)
            else:
                self.out.write(("\n" if self.tty else "") + stamp + text
                               + ("" if self.tty else "\n"))
            self.out.flush()
            self.last_line = now

    def _beat(self) -> None:
        while True:
            time.sleep(min(1.0, self.quiet_after / 4))
            running = self.running
            if running and time.perf_counter() - self.last_line >= self.quiet_after:
                tenant, step, since = running
                self._line(f"tenant {tenant}: still {step} "
                           f"({time.perf_counter() - since:.0f} s)", overwrite=True)

    def stage(self, tenant: str, name: str) -> None:
        self.running = (tenant, name, time.perf_counter())
        self._line(f"tenant {tenant}: {name}")

    def phase(self, tenant: str, text: str, transient: bool = False) -> None:
        self.running = (tenant, text, time.perf_counter())
        self._line(f"tenant {tenant}: {text}", overwrite=transient)

    def finished(self, result: TenantResult) -> None:
        self.running = None
        self._line(f"tenant {result.tenant}: {result.status} {result.message}")
        if self.tty:
            self.out.write("\n")


def print_results(results: Sequence[TenantResult], out: TextIO | None = None) -> None:
    out = out or sys.stdout  # read at call time: tests and callers may replace it
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
        if r.status in _EXPLAINED and r.message:
            print(f"tenant {r.tenant}: {r.message}", file=out)
