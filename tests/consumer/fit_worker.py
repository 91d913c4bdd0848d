"""A real worker process (``python tests/consumer/fit_worker.py``) that trains with the real
pipeline, so that its fit can be stopped and checkpointed. Configured by the usual ML_*
variables (ML_EXPORT_DIR: the export it trains on); no scheduled retrains."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from consumer.app import load_settings, run_worker  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(run_worker(load_settings(), schedule_seconds=0))
