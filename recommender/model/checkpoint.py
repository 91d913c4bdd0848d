"""A full fit's validation phase, checkpointed when the worker running it is told to stop.

The validation phase (one early-stopped fit per identity share, each evaluated after every epoch)
is most of a full fit's time, and the only phase that is resumed: what follows it (the layers,
the refit for the best epoch count, the lists) is run again from the chosen run. When the
interrupt is set, the fit stops at the next epoch boundary, writes ``tenant_<t>/checkpoint.npz``
under ML_MODELS_DIR (temporary file, then rename) and raises ``FitInterrupted``; the run that gets
the redelivered event resumes from it when it is for the same export, algorithm and training
parameters, and removes it once the phase is over. Anything else found there (another export,
other parameters, a damaged file) is removed with a log line and the fit starts afresh.

Each model is stored whole: LightFM's parameters, its optimiser state and its random generator's
state, so that the resumed epochs are the epochs the uninterrupted fit would have run.
"""

from __future__ import annotations

import json
import logging
import threading
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from published.savedmodel import PARAMETERS, SIDES
from recommender.model.params import TrainParams
from runtime.errors import FitInterrupted
from runtime.files import atomic_write

log = logging.getLogger(__name__)

FORMAT = 1
PHASE = "validation"
NAME = "checkpoint.npz"
STATE = tuple(f"{side}_{name}" for side in SIDES for name in PARAMETERS)


@dataclass
class RunState:
    """One early-stopped run as far as it went: its best epoch so far and that epoch's model,
    and (while it runs) the model as it stands, random generator included."""

    identity_weight: float | None
    epoch: int
    score: float
    curve: list[float]
    best: Any  # the model at ``epoch`` (LightFM)
    current: Any = None  # None once the run has ended


@dataclass
class Checkpoint:
    """Where one tenant's fit checkpoints, what it must match, and the stop request it obeys."""

    path: Path
    fingerprint: str
    algorithm: str
    params: TrainParams
    interrupt: threading.Event = field(default_factory=threading.Event)
    resumed_epochs: int = 0  # epochs that the resumed checkpoint had done
    # The feature rows the models have (users', items'): a release that builds features
    # otherwise from the same export must not resume models of another shape.
    features: list[int] = field(default_factory=list)

    def identity(self) -> dict[str, Any]:
        # Through JSON so that a tuple and the list it is read back as compare equal.
        return json.loads(json.dumps({"format": FORMAT, "phase": PHASE,
                                      "fingerprint": self.fingerprint,
                                      "algorithm": self.algorithm,
                                      "params": asdict(self.params),
                                      "features": self.features}))

    def pause(self, runs: list[RunState]) -> None:
        """At an epoch boundary: if the stop was asked, save ``runs`` and raise."""
        if not self.interrupt.is_set():
            return
        done = sum(len(run.curve) for run in runs)
        if done:
            self._write(runs, done)
        raise FitInterrupted(f"stopped after {done} validation epoch(s); "
                             + (f"checkpointed in {self.path}" if done else "nothing to keep"))

    def _write(self, runs: list[RunState], done: int) -> None:
        arrays: dict[str, np.ndarray] = {}
        described = []
        for n, run in enumerate(r for r in runs if r.curve):  # a run not begun starts afresh
            described.append({"identity_weight": run.identity_weight, "epoch": run.epoch,
                              "score": run.score, "curve": run.curve,
                              "running": run.current is not None})
            arrays.update(_model_arrays(f"{n}.best", run.best))
            if run.current is not None:
                arrays.update(_model_arrays(f"{n}.current", run.current))
        meta = {**self.identity(), "epochs_done": done, "runs": described}
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        try:
            atomic_write(self.path, lambda handle: np.savez(handle, **arrays))
        except OSError as exc:  # a checkpoint saves time; failing to write one loses only that
            log.warning("could not write the checkpoint %s (%s): the next worker starts the "
                        "fit afresh", self.path, exc)
            return
        log.info("checkpoint written: %d validation epoch(s) in %s", done, self.path)

    def load(self, new_model: Callable[[], Any], features: list[int]) -> list[RunState]:
        """The runs of a checkpoint of this very fit, or none (a mismatching or damaged
        checkpoint is removed, said in the log). ``new_model`` makes a model to fill in;
        ``features`` are the users' and items' feature counts of this fit."""
        self.features = features
        if not self.path.exists():
            return []
        try:
            with np.load(self.path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
            meta = json.loads(arrays.pop("meta").tobytes())
            mismatch = [k for k, v in self.identity().items() if meta.get(k) != v]
            if mismatch:
                self._drop(f"made for another {', '.join(mismatch)}")
                return []
            runs = [_run_state(n, run, arrays, new_model) for n, run in enumerate(meta["runs"])]
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            self._drop(f"unreadable ({exc})")
            return []
        self.resumed_epochs = int(meta["epochs_done"])
        log.info("resuming the validation fit from %s: %d epoch(s) already done", self.path,
                 self.resumed_epochs)
        return runs

    def discard(self) -> None:
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:  # a full or read-only ML_MODELS_DIR fails the run at save, not here
            log.warning("could not remove the checkpoint %s: %s", self.path, exc)

    def _drop(self, why: str) -> None:
        log.warning("ignoring the checkpoint %s (%s): removed, the fit starts afresh",
                    self.path, why)
        self.discard()


def _model_arrays(prefix: str, model: Any) -> dict[str, np.ndarray]:
    arrays = {f"{prefix}.{name}": getattr(model, name) for name in STATE}
    _, keys, pos, has_gauss, gauss = model.random_state.get_state()
    arrays[f"{prefix}.rng_keys"] = keys
    arrays[f"{prefix}.rng_rest"] = np.array([pos, has_gauss, gauss], dtype=np.float64)
    return arrays


def _restored(prefix: str, arrays: dict[str, np.ndarray], model: Any) -> Any:
    for name in STATE:
        setattr(model, name, np.ascontiguousarray(arrays[f"{prefix}.{name}"], np.float32))
    pos, has_gauss, gauss = arrays[f"{prefix}.rng_rest"]
    model.random_state.set_state(("MT19937", arrays[f"{prefix}.rng_keys"], int(pos),
                                  int(has_gauss), float(gauss)))
    return model


def _run_state(n: int, run: dict[str, Any], arrays: dict[str, np.ndarray],
               new_model: Callable[[], Any]) -> RunState:
    current = (_restored(f"{n}.current", arrays, new_model()) if run["running"] else None)
    return RunState(run["identity_weight"], int(run["epoch"]), float(run["score"]),
                    [float(c) for c in run["curve"]],
                    _restored(f"{n}.best", arrays, new_model()), current)

