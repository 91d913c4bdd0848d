"""deploy/setup.sh as a person watches it: labelled progress while pip works, pip's own words
when it fails. pip is a stand-in here (nothing is downloaded): it prints what pip prints."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from installkit import checkout_copy

FAKE_PIP = """#!/bin/sh
# A stand-in .venv/bin/python: `-m pip install ...` prints pip's lines; FAIL=1 makes it fail.
if [ "$1 $2" = "-m pip" ]; then
  echo "Collecting numpy==2.4.6"
  echo "  Downloading numpy-2.4.6.whl (16.4 MB)"
  echo "Collecting lightfm-next==1.19.0"
  echo "  Building wheel for lightfm-next (pyproject.toml): started"
  echo "  Building wheel for lightfm-next (pyproject.toml): still running..."
  echo "Installing collected packages: numpy, lightfm-next"
  [ -n "$FAIL" ] && { echo "ERROR: No matching distribution found for numpy"; exit 1; }
  echo "Successfully installed numpy-2.4.6 lightfm-next-1.19.0"
  exit 0
fi
exec "$REAL_PYTHON" "$@"
"""


def _system_ready() -> bool:
    """setup.sh would reach for apt-get otherwise; the test does not install system packages."""
    headers = Path(subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['include'])"],
        capture_output=True, text=True).stdout.strip(), "Python.h")
    return shutil.which("gcc") is not None and headers.exists()


@pytest.fixture
def checkout(tmp_path) -> Path:
    if not _system_ready():
        pytest.skip("no C compiler or Python headers: setup.sh would run apt-get")
    root = checkout_copy(tmp_path / "checkout")
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PIP)
    python.chmod(0o755)
    return root


def _setup(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "deploy/setup.sh", *args], cwd=root, capture_output=True,
                          text=True, timeout=60,
                          env={**os.environ, "REAL_PYTHON": sys.executable, **env})


def test_install_prints_a_labelled_line_for_each_package_and_step(checkout):
    # When a first install runs / Then each phase and package is named, as it happens
    done = _setup(checkout)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "setup: [2/3] installing the pinned packages of requirements.lock" in out
    assert "setup: [2/3] downloading numpy==2.4.6 (1 of " in out
    assert "setup: [2/3] compiling lightfm-next" in out and "still compiling" in out
    assert "setup: [3/3] installing the service's commands" in out
    assert out.rstrip().endswith("(README, Commands)")
    # and a second run says there is nothing to do
    again = _setup(checkout)
    assert again.stdout.strip() == "setup: .venv is up to date (requirements.lock)"


def test_a_failing_pip_shows_its_own_error_and_stops(checkout):
    done = _setup(checkout, "--dev", FAIL="1")
    assert done.returncode == 1
    assert "pip failed" in done.stderr and "No matching distribution found" in done.stderr
