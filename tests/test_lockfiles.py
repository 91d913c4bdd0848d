"""The lock files match requirements*.txt and pin everything with hashes (README, "Pinned
installs"): deploy/setup.sh installs them with ``pip install --require-hashes``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_PIN = re.compile(r"^([A-Za-z0-9_.\-\[\]]+)==([^\s\\;]+)", re.M)


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw.split("[")[0]).lower()


def _pins(path: Path) -> dict[str, str]:
    return {_name(n): v for n, v in _PIN.findall(path.read_text())}


def _direct(path: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            pins.update(_direct(path.parent / line[3:].strip()))
        elif line:
            match = _PIN.match(line)
            assert match, f"{path.name}: {line!r} is not pinned with =="
            pins[_name(match.group(1))] = match.group(2)
    return pins


@pytest.mark.parametrize("txt, lock", [("requirements.txt", "requirements.lock"),
                                       ("requirements.txt", "requirements-dev.lock"),
                                       ("requirements-eval.txt", "requirements-dev.lock"),
                                       ("requirements-dev.txt", "requirements-dev.lock")])
def test_the_lock_pins_every_requirement_at_its_version_with_hashes(txt, lock):
    locked = _pins(ROOT / lock)
    for name, version in _direct(ROOT / txt).items():
        assert locked.get(name) == version, (f"{lock} has {name}=={locked.get(name)}, {txt} "
                                             f"wants {version}: regenerate the lock (README)")
    # Every entry carries at least one hash, or --require-hashes refuses the whole file.
    entries = re.split(r"\n(?=[A-Za-z0-9])", (ROOT / lock).read_text().split("\n\n", 1)[-1])
    for entry in entries:
        if _PIN.match(entry):
            assert "--hash=sha256:" in entry, entry.splitlines()[0]


def test_the_dev_lock_contains_the_runtime_lock():
    runtime, dev = _pins(ROOT / "requirements.lock"), _pins(ROOT / "requirements-dev.lock")
    assert {n: v for n, v in runtime.items() if dev.get(n) != v} == {}


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-dev.lock"])
def test_the_lock_carries_no_index_or_path_of_the_machine_that_made_it(lock):
    # pip reads options inside a requirements file: a local index or wheel folder written there
    # sends every other machine's install to a path it does not have.
    flags = ("--index-url", "--extra-index-url", "--find-links", "-f ", "-i ")
    options = [line for line in (ROOT / lock).read_text().splitlines() if line.startswith(flags)]
    assert options == []
