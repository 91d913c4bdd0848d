"""Training progress a person can follow: labelled phases in order, the epochs column is the
refit's epoch count, and nothing stays silent for long on the console."""

from __future__ import annotations

import io
import re
import time

import fakeredis
import pytest

from published.runs import RunStatus
from recommender import pipeline
from recommender.console import ConsoleProgress
from recommender.model.params import TrainParams
from recommender.offline import demo
from recommender.outcome import Progress, TenantResult
from runtime import config

FAST = TrainParams(components=16, max_epochs=8, patience=2, rerank_users=400)
# The phases of a full fit, in the order a run goes through them.
PHASES = ["load: ", "features: ", "fit: ",
          "fit LightFM on the validation split", "best epoch",
          "item-item layer: choose", "item-item layer: ", "validation: ",
          "refit LightFM on all", "save: ", "precompute user lists: ",
          "precompute similar-item lists: ", "publish: "]


class Recorded(Progress):
    def __init__(self) -> None:
        self.lines: list[tuple[str, bool]] = []

    def stage(self, tenant: str, name: str) -> None:
        self.lines.append((name, False))

    def phase(self, tenant: str, text: str, transient: bool = False) -> None:
        self.lines.append((text, transient))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[TenantResult, list[tuple[str, bool]]]:
    """One small demo tenant trained once, its progress recorded."""
    folder = tmp_path_factory.mktemp("progress")
    demo.write_demo_export(folder / "export", tenants=1, users=80, items=40, interactions=1500,
                           seed=3)
    env = {f"ML_{name.upper()}_DIR": str(folder / name) for name in ("models", "logs", "export")}
    settings = config.from_env(env, require_totara=False)
    progress = Recorded()
    result = pipeline.train_tenant(settings, fakeredis.FakeRedis(server=fakeredis.FakeServer()),
                                   "0", params=FAST, progress=progress)
    assert result.status == RunStatus.PUBLISHED
    return result, progress.lines


def test_a_training_run_announces_its_labelled_phases_in_order(trained):
    _, lines = trained
    texts = [text for text, _ in lines]
    position = 0
    for phase in PHASES:
        found = next((i for i in range(position, len(texts)) if texts[i].startswith(phase)
                      or (phase == "best epoch" and phase in texts[i])), None)
        assert found is not None, f"{phase!r} not after {texts[position - 1]!r}: {texts}"
        position = found + 1
    # Every epoch line says which fit it belongs to, its number and the limit
    epochs = [text for text, transient in lines if transient and "epoch " in text]
    assert epochs and all(re.search(r"^(fit|refit) LightFM .*: epoch \d+/\d+", e) for e in epochs)


def test_the_epochs_column_is_the_refit_epoch_count_announced(trained):
    result, lines = trained
    refit = next(text for text, _ in lines if text.startswith("refit LightFM on all"))
    assert f": {result.epochs} epochs (the best validation epoch)" in refit
    best = [int(m.group(1)) for text, _ in lines
            if (m := re.search(r"best epoch (\d+) of", text))]
    assert result.epochs in best


def test_the_console_says_what_is_still_running_after_a_silence():
    out = io.StringIO()
    progress = ConsoleProgress(out, quiet_after=0.2)
    progress.stage("0", "fit: LightFM")
    progress.phase("0", "re-ranker: LightGBM fit 1 of 3", transient=True)
    time.sleep(0.8)
    assert re.search(r"tenant 0: still re-ranker: LightGBM fit 1 of 3 \(\d+ s\)", out.getvalue())
    # Once the tenant is finished, no more of them
    progress.finished(TenantResult("0", RunStatus.PUBLISHED, "trained"))
    said = out.getvalue()
    time.sleep(0.6)
    assert out.getvalue() == said
