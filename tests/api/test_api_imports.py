"""The API process stays lean: no training libraries, no training code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The training side is the whole ``recommender`` package: the API reads what it published.
FORBIDDEN = ("lightfm", "lightgbm", "scipy", "sklearn", "pyarrow", "recommender", "consumer")


def test_app_imports_no_training_code():
    code = ("import sys, api.app, api.health, api.checks, api.recommend; "
            "print('\\n'.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.split()
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)]
    assert bad == []
