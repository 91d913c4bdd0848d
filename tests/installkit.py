"""Installing the project as a user would, without the network or the shared venv.

A new venv (no pip of its own) sees the shared venv's packages through a .pth file: they stand
for what the locks install, so only the project itself is installed, offline and in seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_SITE = Path(sysconfig.get_paths()["purelib"])
COMMANDS = ("totara-recommender-api", "totara-recommender-worker", "totara-recommender-publish",
            "totara-recommender")


def tracked_files() -> list[str]:
    """The files a clean checkout has (git's index), as paths relative to the repository."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode()
    return [name for name in listed.split("\0") if name and (ROOT / name).is_symlink()
            or (ROOT / name).is_file()]


def checkout_copy(dest: Path) -> Path:
    """The tracked files (as they are in the worktree) in ``dest``, links kept as links."""
    for name in tracked_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target, follow_symlinks=False)
    return dest


def bare_venv(path: Path) -> Path:
    """A venv at ``path`` without pip, seeing the shared packages; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                   timeout=60)
    python = path / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; "
                           "print(sysconfig.get_paths()['purelib'])"], capture_output=True,
                          text=True, check=True).stdout.strip()
    Path(site, "shared-venv.pth").write_text(f"{SHARED_SITE}\n")
    return python


def pip_install(python: Path, source: Path) -> subprocess.CompletedProcess:
    """``pip install --no-deps .`` of ``source`` into ``python``'s venv, offline."""
    return subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                           "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
                           "--disable-pip-version-check", str(source)],
                          capture_output=True, text=True, timeout=300)
