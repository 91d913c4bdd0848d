"""runtime.errors is the one home of the service's exceptions, under one base."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

from runtime import errors

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "consumer", "published", "recommender", "runtime")
BUILTIN_ERRORS = {name for name, value in vars(builtins).items()
                  if isinstance(value, type) and issubclass(value, BaseException)}
# Control flow inside one module, caught next to where it is raised (see runtime/errors.py).
SIGNALS = {"recommender/ingest/csvfile.py": {"Fallback", "RowProblem"},
           "consumer/worker.py": {"_StopRequested"}}


def _exception_classes(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)
            and any(isinstance(b, ast.Name) and b.id in BUILTIN_ERRORS for b in node.bases)}


def test_no_exception_class_is_defined_outside_the_errors_module_but_internal_signals():
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = path.relative_to(ROOT).as_posix()
            if name != "runtime/errors.py" and _exception_classes(path):
                found[name] = _exception_classes(path)
    assert found == SIGNALS


def test_every_error_derives_from_the_service_base():
    classes = [c for c in vars(errors).values() if isinstance(c, type)
               and issubclass(c, BaseException)]
    assert errors.ServiceError in classes
    assert all(issubclass(c, errors.ServiceError) for c in classes)


@pytest.mark.parametrize("cls,builtin", [
    (errors.ConfigError, ValueError), (errors.InvalidEvent, ValueError),
    (errors.StaleVersionError, RuntimeError), (errors.ModelStoreError, OSError),
    (errors.CorruptListError, ValueError),
])
def test_errors_keep_the_builtin_base_their_callers_catch(cls, builtin):
    assert issubclass(cls, builtin)


def test_only_infrastructure_trouble_is_retryable():
    retryable = {c.__name__ for c in vars(errors).values() if isinstance(c, type)
                 and issubclass(c, errors.RetryableError)}
    assert retryable == {"RetryableError", "TransientDownloadError", "ModelStoreError",
                         "LockLostError"}
    assert issubclass(errors.TransientDownloadError, errors.DownloadError)


def test_the_modules_that_raise_an_error_still_offer_it_under_its_old_name():
    from api import params
    from consumer import events
    from published import versions
    from recommender import pipeline
    from recommender.ingest import download, export
    from runtime import config

    assert (config.ConfigError, versions.StaleVersionError, export.ExportError,
            download.DownloadError, pipeline.ModelStoreError, events.InvalidEvent,
            params.BadRequest) == (errors.ConfigError, errors.StaleVersionError,
                                   errors.ExportError, errors.DownloadError,
                                   errors.ModelStoreError, errors.InvalidEvent,
                                   errors.BadRequest)


def test_a_retryable_download_is_reported_under_the_name_operators_know():
    # The retryable subclass only refines retrying: run outcomes, dead-letter reasons and the
    # health check keep saying DownloadError, as they did before the hierarchy
    assert errors.describe(errors.TransientDownloadError("Totara answered 503")) == (
        "DownloadError: Totara answered 503")
    assert errors.describe(errors.DownloadError("404")) == "DownloadError: 404"
    assert errors.describe(KeyError("x")) == "KeyError: 'x'"
