"""A full fit stopped at an epoch boundary writes a checkpoint, and the next fit of the same
export resumes from it: the epochs done are not run again, and the result is the uninterrupted
fit's. A checkpoint of anything else is removed and the fit starts afresh."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.model import features, train
from recommender.model.checkpoint import NAME, Checkpoint
from runtime.errors import FitInterrupted
from tests.factories import make_export

# Patience past max_epochs: every identity share runs all its epochs, 2 x 5 in all.
PARAMS = train.TrainParams(components=8, max_epochs=5, patience=10, rerank=False)
TOTAL = 2 * PARAMS.max_epochs


@pytest.fixture(scope="module")
def fs():
    return features.build(make_export(n_users=240, n_items=72, per_user=10, seed=5), "hybrid")


@pytest.fixture(scope="module")
def uninterrupted(fs):
    return train.fit(fs, PARAMS, 1)


class Epochs:
    """The fit's ``say``: counts validation epochs, and sets ``interrupt`` after ``stop_after``."""

    def __init__(self, saver: Checkpoint | None = None, stop_after: int | None = None) -> None:
        self.count, self.saver, self.stop_after = 0, saver, stop_after

    def __call__(self, text: str, transient: bool) -> None:
        if "validation split" in text and ": epoch " in text:
            self.count += 1
            if self.saver is not None and self.count == self.stop_after:
                self.saver.interrupt.set()


def _checkpoint(tmp_path, fingerprint="export-1", params=PARAMS) -> Checkpoint:
    return Checkpoint(tmp_path / "tenant_7" / NAME, fingerprint, "hybrid", params)


def _interrupted(fs, tmp_path, after: int) -> Checkpoint:
    saver = _checkpoint(tmp_path)
    with pytest.raises(FitInterrupted):
        train.fit(fs, PARAMS, 1, Epochs(saver, stop_after=after), saver)
    assert saver.path.exists() and saver.path.name == NAME
    return saver


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(after=st.integers(1, TOTAL - 1))
def test_a_fit_interrupted_after_n_epochs_resumes_where_it_stopped(fs, uninterrupted,
                                                                   tmp_path_factory, after):
    # Given a fit stopped after ``after`` validation epochs, checkpointed
    tmp_path = tmp_path_factory.mktemp("models")
    _interrupted(fs, tmp_path, after)
    # When the same export's fit runs again
    epochs, saver = Epochs(), _checkpoint(tmp_path)
    resumed = train.fit(fs, PARAMS, 1, epochs, saver)
    # Then it runs only the epochs left, ends with the uninterrupted fit's epochs, curves and
    # model, and removes the checkpoint
    assert saver.resumed_epochs == after and epochs.count == TOTAL - after
    assert resumed.epochs_trained == uninterrupted.epochs_trained
    assert resumed.candidates == uninterrupted.candidates
    assert resumed.epochs == uninterrupted.epochs
    assert np.array_equal(resumed.model.item_embeddings, uninterrupted.model.item_embeddings)
    assert resumed.validation == pytest.approx(uninterrupted.validation)
    assert np.isfinite(resumed.model.user_embeddings).all() and resumed.validation["precision"] > 0
    assert not saver.path.exists()


@pytest.mark.parametrize("other", [
    {"fingerprint": "export-2"},
    {"params": train.TrainParams(components=8, max_epochs=5, patience=10, rerank=False,
                                 learning_rate=0.1)},
], ids=["another export", "other params"])
def test_a_checkpoint_of_another_fit_is_removed_and_the_fit_starts_afresh(fs, tmp_path, other,
                                                                          caplog):
    _interrupted(fs, tmp_path, 3)
    epochs, saver = Epochs(), _checkpoint(tmp_path, **other)
    train.fit(fs, saver.params, 1, epochs, saver)
    assert epochs.count == TOTAL and saver.resumed_epochs == 0
    assert not saver.path.exists()
    assert "ignoring the checkpoint" in caplog.text


def test_a_checkpoint_of_models_of_another_shape_is_removed_and_the_fit_starts_afresh(
        fs, tmp_path, caplog):
    # Given a checkpoint of the same export id whose features were built otherwise (another
    # release): as many users, fewer item feature rows
    _interrupted(fs, tmp_path, 3)
    other = features.build(make_export(n_users=240, n_items=60, per_user=10, seed=5), "hybrid")
    epochs, saver = Epochs(), _checkpoint(tmp_path)
    train.fit(other, PARAMS, 1, epochs, saver)
    assert epochs.count == TOTAL and not saver.path.exists()
    assert "made for another features" in caplog.text


def test_a_damaged_checkpoint_is_removed_and_the_fit_starts_afresh(fs, tmp_path, caplog):
    saver = _interrupted(fs, tmp_path, 3)
    saver.path.write_bytes(saver.path.read_bytes()[:200])
    epochs = Epochs()
    train.fit(fs, PARAMS, 1, epochs, _checkpoint(tmp_path))
    assert epochs.count == TOTAL and not saver.path.exists()
    assert "unreadable" in caplog.text


def test_a_fit_stopped_before_its_first_epoch_leaves_no_checkpoint(fs, tmp_path):
    saver = _checkpoint(tmp_path)
    saver.interrupt.set()
    with pytest.raises(FitInterrupted, match="nothing to keep"):
        train.fit(fs, PARAMS, 1, Epochs(), saver)
    assert not saver.path.exists()


def test_a_models_dir_that_refuses_writes_loses_the_checkpoint_but_not_the_hand_back(
        fs, tmp_path, monkeypatch):
    # Given an ML_MODELS_DIR that refuses every write and removal (full or read-only)
    def refuse(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("recommender.model.checkpoint.atomic_write", refuse)
    monkeypatch.setattr("pathlib.Path.unlink", refuse)
    saver = _checkpoint(tmp_path)
    # When the fit is stopped, and when a finished fit discards its checkpoint
    with pytest.raises(FitInterrupted):
        train.fit(fs, PARAMS, 1, Epochs(saver, stop_after=1), saver)
    saver.discard()
    # Then the stop is still a hand-back (FitInterrupted), not an OSError, and nothing is left
    assert not saver.path.exists()
