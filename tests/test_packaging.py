"""The project as a package: ``pip install .`` gives the console commands, the runtime
requirements carry only what the service runs on, optional tools fail with a clear message."""

from __future__ import annotations

import ast
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from installkit import COMMANDS, ROOT, bare_venv, checkout_copy, pip_install, tracked_files

from recommender.offline import evalreport

PACKAGES = ("api", "consumer", "recommender", "runtime", "published")
OPTIONAL = ("honcho", "matplotlib")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the project installed from a copy of the checkout; its bin folder."""
    tmp = tmp_path_factory.mktemp("install")
    python = bare_venv(tmp / "venv")
    done = pip_install(python, checkout_copy(tmp / "checkout"))
    assert done.returncode == 0, done.stderr
    return python.parent


def test_pip_install_gives_a_console_command_for_each_program(installed, tmp_path):
    # Given the installed package, run from a folder that is not the checkout
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ML_", "PYTHONPATH"))}
    for command in COMMANDS:
        # When each command is asked for its help / Then it runs and explains itself
        done = subprocess.run([str(installed / command), "--help"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (command, done.stderr)
        assert done.stdout.startswith("usage:"), (command, done.stdout)


def test_the_installed_package_holds_every_file_its_code_reads(installed, tmp_path):
    # Every tracked file of the packages that is not Python (the OpenAPI document, templates)
    where = subprocess.run([str(installed / "python"), "-c", "import api, pathlib; "
                            "print(pathlib.Path(api.__file__).parent.parent)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout.strip()
    site = Path(where)
    assert site != ROOT and "site-packages" in site.parts
    data = [name for name in tracked_files()
            if name.split("/")[0] in PACKAGES and not name.endswith(".py")]
    assert "api/openapi.json" in data
    missing = [name for name in data if not (site / name).is_file()]
    assert missing == []
    assert (site / "api" / "openapi.json").read_bytes() == (ROOT / "docs" /
                                                           "openapi.json").read_bytes()


def _direct_names(path: Path) -> set[str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return {line.split("==")[0].lower() for line in lines if line}


def test_runtime_requirements_leave_the_demo_runner_and_the_plots_to_extras():
    runtime = _direct_names(ROOT / "requirements.txt")
    locked = (ROOT / "requirements.lock").read_text()
    for name in OPTIONAL:
        assert name not in runtime
        assert f"\n{name}==" not in locked
    extras = _direct_names(ROOT / "requirements-eval.txt") | _direct_names(
        ROOT / "requirements-dev.txt")
    assert set(OPTIONAL) <= extras


def _top_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in tree.body:  # module level only: an import inside a function is optional
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_of_the_service_needs_an_optional_package_to_import():
    offenders = [str(path.relative_to(ROOT)) for package in PACKAGES
                 for path in (ROOT / package).rglob("*.py")
                 if _top_level_imports(path) & set(OPTIONAL)]
    assert offenders == []


def test_evaluate_without_matplotlib_says_how_to_get_the_plot(monkeypatch, caplog, tmp_path):
    # Given an install without the eval extra
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    # When the report's plot is drawn
    with caplog.at_level(logging.WARNING):
        drawn = evalreport.plot({"models": []}, tmp_path / "plot.png")
    # Then no plot, no traceback, and one line naming the extra
    assert drawn is False and not (tmp_path / "plot.png").exists()
    assert "totara-recommender[eval]" in caplog.text and "requirements-eval.txt" in caplog.text
