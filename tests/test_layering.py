"""Imports run one way: runtime <- published <- {recommender, consumer, api}, and no role
imports another's internals. Read from the source, so a wrong-way import fails the build even
when it is only reached at run time (an import inside a function)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("runtime", "published", "recommender", "consumer", "api")
# What each package may import of ours. The consumer reaches training through one module
# (recommender.service), which is checked below.
ALLOWED = {
    "runtime": {"runtime"},
    "published": {"runtime", "published"},
    "recommender": {"runtime", "published", "recommender"},
    "consumer": {"runtime", "published", "consumer", "recommender"},
    "api": {"runtime", "published", "api"},
}
# Inside the training side, data flows ingest -> model -> publish; offline tools use them all.
TRAINING_ORDER = {"ingest": 0, "model": 1, "publish": 2}
# Light modules of the training side every stage may report through.
SHARED = {"outcome"}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_only_the_layers_below_it(package):
    wrong = [f"{path.relative_to(ROOT)}: {name}" for path in _modules(package)
             for name in _imports(path)
             if name.split(".")[0] in PACKAGES and name.split(".")[0] not in ALLOWED[package]]
    assert wrong == []


def test_consumer_reaches_training_only_through_the_service_facade():
    wrong = [f"{path.relative_to(ROOT)}: {name}" for path in _modules("consumer")
             for name in _imports(path)
             if name.startswith("recommender")
             and name not in ("recommender", "recommender.service")
             and not name.startswith("recommender.service.")]
    assert wrong == []


def test_training_stages_import_only_earlier_stages():
    wrong = []
    for stage, rank in TRAINING_ORDER.items():
        for path in _modules(f"recommender/{stage}"):
            for name in _imports(path):
                parts = name.split(".")
                if parts[0] == "recommender" and len(parts) > 1 and parts[1] in TRAINING_ORDER:
                    if TRAINING_ORDER[parts[1]] > rank:
                        wrong.append(f"{path.relative_to(ROOT)}: {name}")
                elif parts[0] == "recommender" and len(parts) > 1 and parts[1] not in SHARED:
                    wrong.append(f"{path.relative_to(ROOT)}: {name}")
    assert wrong == []
