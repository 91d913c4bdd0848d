"""Production code stays small enough to hold in one's head: no function over 50 lines, no
module over 300 (a function counts from its ``def`` to its last line, docstring included)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("runtime", "published", "recommender", "consumer", "api")
MAX_FUNCTION_LINES = 50
MAX_MODULE_LINES = 300



def _modules() -> list[Path]:
    return [path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))]


def _long_functions(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = path.relative_to(ROOT).as_posix()
    return [f"{name}:{node.lineno} {node.name} has {node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]


def test_every_production_package_is_walked():
    names = {path.relative_to(ROOT).parts[0] for path in _modules()}
    assert names == set(PACKAGES)


def test_no_production_function_is_longer_than_50_lines():
    offenders = [line for path in _modules() for line in _long_functions(path)]
    assert not offenders, "\n".join(offenders)


def test_no_production_module_is_longer_than_300_lines():
    offenders = [f"{path.relative_to(ROOT).as_posix()} has {n} lines" for path in _modules()
                 if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    assert not offenders, "\n".join(offenders)
