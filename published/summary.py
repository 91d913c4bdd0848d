"""``ML_LOGS_DIR/train_summary.log``: the original's CSV, one row per tenant per run, 100 kept."""

from __future__ import annotations

import csv
import fcntl
import io
import time
from pathlib import Path

HEADER = ["TIMESTAMP", "ALGORITHM", "TENANT_ID", "MSG", "EPOCHS", "N_EMBEDDINGS", "SCORE"]
KEEP_ROWS = 100
FILE_NAME = "train_summary.log"


def append(logs_dir: Path, algorithm: str, tenant: str, message: str, epochs: int | str = "",
           components: int | str = "", score: float | str = "", now: float | None = None) -> None:
    """Add a row, keeping the newest KEEP_ROWS; safe with several processes writing at once."""
    logs_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(time.time() if now is None else now))
    score_text = f"{score:.4f}" if isinstance(score, float) else str(score)
    row = [stamp, algorithm, tenant, message, str(epochs), str(components), score_text]
    path = logs_dir / FILE_NAME
    with open(path, "a+", newline="", encoding="utf-8") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        rows = [r for r in csv.reader(handle) if r and r != HEADER]
        rows = (rows + [row])[-KEEP_ROWS:]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
        handle.seek(0)
        handle.truncate()
        handle.write(out.getvalue())


def read(logs_dir: Path) -> list[dict[str, str]]:
    path = logs_dir / FILE_NAME
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return [dict(zip(HEADER, r, strict=False)) for r in csv.reader(handle)
                if r and r != HEADER]
