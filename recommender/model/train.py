"""Fit LightFM: early-stopped fits on a validation split, then one refit on everything.

The original spends about 31 full fits per tenant (simulated annealing over epochs and
components on AUC). Here epochs are chosen by watching validation precision@10 after every
epoch, and the share of the identity features against the metadata features is chosen between
a few candidates on the same split (metadata helps where it predicts behaviour and costs
personalisation where it does not). The model is then refit on all interactions for the best
epoch count: about three fits' worth of work. This is the only module that imports LightFM.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp
from lightfm import LightFM

from published.savedmodel import PARAMETERS, SIDES
from recommender.model import checkpoint, ensemble, itemsearch, rerank
from recommender.model.features import FeatureSet
from recommender.model.itemitem import ItemItem
from recommender.model.params import TrainParams
from recommender.model.ranking import ScoreFn, split_per_user
from recommender.model.validation import Validation
from recommender.model.warmstart import MIN_HELD_OUT, WarmStart, split_new_pairs
from recommender.outcome import Say, quiet
from runtime.timing import timed

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    model: LightFM
    features: FeatureSet  # what the model was trained on: the chosen identity share's rows
    epochs: int
    validation: dict[str, float]  # precision, recall, ndcg, auc at k=10 on held-out pairs
    curve: list[float] = field(default_factory=list)  # validation precision@10 per epoch
    seconds: dict[str, float] = field(default_factory=dict)
    identity_weight: float | None = None  # the chosen identity share (None: mf or fixed)
    epochs_trained: int = 0  # every epoch of every fit, refit included: the compute spent
    candidates: dict[str, list[float]] = field(default_factory=dict)  # curve per identity share
    # Set by fit_incremental: the saved model's validation P@10 on the same held-out new pairs.
    warm_baseline: float | None = None
    held_out_pairs: int = 0  # the validation pairs (new pairs only in an incremental fit)
    # The item-item part on all interactions, blended at ``blend.weight``; None: LightFM alone.
    item_item: ItemItem | None = None
    layers: ensemble.Ensemble = field(default_factory=ensemble.Ensemble)

    @property
    def blend(self) -> itemsearch.Choice:
        return self.layers.blend

    @property
    def ranker(self) -> rerank.Ranker | None:
        return self.layers.rerank.ranker


def _new_model(params: TrainParams, fs: FeatureSet) -> LightFM:
    with_features = fs.user_features is not None or fs.item_features is not None
    item_alpha = params.item_alpha if with_features else params.mf_alpha
    user_alpha = params.user_alpha if with_features else params.mf_alpha
    return LightFM(no_components=params.components, loss=params.loss,
                   learning_schedule=params.learning_schedule,
                   learning_rate=params.learning_rate, item_alpha=item_alpha,
                   user_alpha=user_alpha, max_sampled=params.max_sampled,
                   random_state=params.seed)


def representations(model: LightFM, fs: FeatureSet) -> tuple[np.ndarray, ...]:
    """(user biases, user embeddings, item biases, item embeddings), features folded in."""
    ub, ue = model.get_user_representations(fs.user_features)
    ib, ie = model.get_item_representations(fs.item_features)
    return (ub.astype(np.float32), ue.astype(np.float32), ib.astype(np.float32),
            ie.astype(np.float32))


def warm_model(params: TrainParams, fs: FeatureSet, warm: WarmStart) -> LightFM:
    """A model on ``fs``'s feature rows: carried features keep the saved parameters and
    optimiser state, new ones start as LightFM starts them."""
    model = _new_model(params, fs)
    n_items, n_users = len(warm.rows["item"]), len(warm.rows["user"])
    model._initialize(params.components, n_items, n_users)  # what fit_partial does at first
    for side in SIDES:
        rows = warm.rows[side]
        known = rows >= 0
        for name in PARAMETERS:
            target = getattr(model, f"{side}_{name}")
            target[known] = warm.params[side][name][rows[known]]
    return model


def _scorer(model: LightFM, fs: FeatureSet) -> ScoreFn:
    _, ue, ib, ie = representations(model, fs)
    return lambda rows: ue[rows] @ ie.T + ib


@dataclass
class _Run:
    """One early-stopped fit: its best epoch, that epoch's validation P@10 and model."""

    fs: FeatureSet
    epoch: int
    score: float
    model: LightFM
    curve: list[float]  # validation P@10 per epoch


def _early_stopped(fs: FeatureSet, params: TrainParams, split: Validation, num_threads: int,
                   say: Say, label: str, model: LightFM | None = None,
                   resume: checkpoint.RunState | None = None,
                   pause: Callable[[_Run, LightFM], None] | None = None) -> _Run:
    """Fit epoch by epoch, keeping the best one on validation. From ``model`` if given (a warm
    start, which uses the incremental epoch limits), else from a new model, or from where
    ``resume`` stood; ``pause`` is called at every epoch boundary (it may raise to stop)."""
    max_epochs, patience = params.max_epochs, params.patience
    if model is None:
        model = _new_model(params, fs)
    else:
        max_epochs, patience = params.incremental_max_epochs, params.incremental_patience
    run = _Run(fs, 0, -1.0, model, [])
    if resume is not None:
        run = _Run(fs, resume.epoch, resume.score, resume.best, resume.curve)
        if resume.current is None:  # it had ended
            return run
        model = resume.current
    for epoch in range(len(run.curve) + 1, max_epochs + 1):
        if pause is not None:
            pause(run, model)
        model.fit_partial(split.ones, user_features=fs.user_features,
                          item_features=fs.item_features, sample_weight=split.weights,
                          epochs=1, num_threads=num_threads)
        precision = split.precision(_scorer(model, fs))
        run.curve.append(precision)
        say(f"{label}: epoch {epoch}/{max_epochs}, validation P@10 {precision:.4f}", True)
        if precision > run.score:
            # A snapshot costs one copy of the parameters, far less than refitting to it.
            run.epoch, run.score, run.model = epoch, precision, copy.deepcopy(model)
        elif epoch - run.epoch >= patience:
            break
    say(f"{label}: best epoch {run.epoch} of {len(run.curve)}, validation P@10 "
        f"{run.score:.4f}", False)
    return run


def _validation_runs(candidates: list[FeatureSet], params: TrainParams, split: Validation,
                     num_threads: int, say: Say, saver: checkpoint.Checkpoint | None) -> list[_Run]:
    """One early-stopped run per candidate, resumed from and checkpointed to ``saver``."""
    resumed = saver.load(lambda: _new_model(params, candidates[0]),
                         _feature_counts(candidates[0])) if saver else []
    runs: list[_Run] = []

    def state(run: _Run, current: LightFM | None = None) -> checkpoint.RunState:
        return checkpoint.RunState(run.fs.identity_weight, run.epoch, run.score, run.curve,
                                   run.model, current)

    def pause(run: _Run, model: LightFM) -> None:
        assert saver is not None
        saver.pause([state(done) for done in runs] + [state(run, model)])

    for n, c in enumerate(candidates):
        runs.append(_early_stopped(c, params, split, num_threads, say,
                                   _validation_label(c, n + 1, len(candidates)),
                                   resume=resumed[n] if n < len(resumed) else None,
                                   pause=pause if saver else None))
    if saver:
        saver.discard()  # the phase is over: what follows it is not resumed
    return runs


def _refit(model: LightFM, fs: FeatureSet, epochs: int, num_threads: int, say: Say) -> None:
    """Fit on every interaction, one epoch per call so that each can be announced (the same
    fit as one call for all the epochs: the model's random state carries from one to the next)."""
    label = f"refit LightFM on all {fs.interactions.nnz} interactions"
    say(f"{label}: {epochs} epochs (the best validation epoch)", False)
    for epoch in range(1, epochs + 1):
        model.fit_partial(fs.interactions, user_features=fs.user_features,
                          item_features=fs.item_features, sample_weight=fs.weights,
                          epochs=1, num_threads=num_threads)
        say(f"{label}: epoch {epoch}/{epochs}", True)


def _finish(split: Validation, runs: list[_Run], best: _Run, num_threads: int,
            seconds: dict[str, float], say: Say, warm: WarmStart | None = None) -> FitResult:
    """The ending both fits share once validation has chosen ``best`` among ``runs``: choose
    the layers, measure, then refit on every interaction from a new model, or from the saved
    one when ``warm`` is given."""
    params, fs = split.params, best.fs
    with timed(seconds, "layers_choice"):
        layers = split.choose_layers(_scorer(best.model, fs), fs, num_threads, say)
    # The reported quality is that of what would be published from the model stopped at the
    # best epoch: LightFM with the chosen layers on top.
    say("validation: P@10, R@10, NDCG and AUC of LightFM with its layers", False)
    with timed(seconds, "validation_score"):
        metrics = split.quality(layers.validation_scorer(_scorer(best.model, fs)))
        # The saved model as it starts, with the same layers: the gate compares like with like.
        baseline = None if warm is None else split.precision(
            layers.validation_scorer(_scorer(warm_model(params, fs, warm), fs)))
    # Zero epochs from the saved model is the saved model; from a new one it is noise.
    epochs = best.epoch if warm else max(best.epoch, 1)
    with timed(seconds, "refit"):
        final = warm_model(params, fs, warm) if warm else _new_model(params, fs)
        _refit(final, fs, epochs, num_threads, say)
    if layers.blend.used:
        say("item-item layer: refit on all interactions", False)
    with timed(seconds, "item_item"):
        item_item = layers.final_item_item(fs.interactions, num_threads)
    layers.release_validation()
    log.debug("%s: identity share %s, best epoch %d, curve %s, blend %s, saved model %s",
              f"incremental fit from {warm.source_version}" if warm else f"fit {asdict(params)}",
              fs.identity_weight, best.epoch, best.curve, layers.blend.precision, baseline)
    curves = {str(run.fs.identity_weight): [round(c, 4) for c in run.curve] for run in runs}
    return FitResult(final, fs, epochs, metrics, best.curve, seconds, fs.identity_weight,
                     sum(len(run.curve) for run in runs) + epochs, curves,
                     warm_baseline=baseline, held_out_pairs=int(split.held_out.nnz),
                     item_item=item_item, layers=layers)


def fit(fs: FeatureSet, params: TrainParams, num_threads: int, say: Say = quiet,
        saver: checkpoint.Checkpoint | None = None) -> FitResult:
    """Early-stopped fits on a per-user split (one per identity share), then a refit on all
    interactions. ``fs`` is left as it is: the result's ``features`` hold the chosen share,
    so what the caller publishes from them is what was trained. With ``saver`` the validation
    fits resume from its checkpoint and stop (checkpointed) when its interrupt is set."""
    seconds: dict[str, float] = {}
    split = Validation.of(fs, *split_per_user(fs.interactions.tocsr(),
                                              params.validation_fraction, params.seed), params)
    shares = sorted(params.identity_weights) if fs.reweightable() else []
    candidates = [fs.with_identity_weight(w) for w in shares] or [fs]
    with timed(seconds, "validation_fit"):
        runs = _validation_runs(candidates, params, split, num_threads, say, saver)
        top = max(run.score for run in runs)
        best = next(run for run in runs if run.score >= (1.0 - params.identity_tolerance) * top)
    if len(runs) > 1:
        say(f"chosen: identity share {best.fs.identity_weight:g}", False)
    return _finish(split, runs, best, num_threads, seconds, say)


def _feature_counts(fs: FeatureSet) -> list[int]:
    """The rows of the users' and items' parameters (LightFM's identity when no features)."""
    n_users, n_items = fs.interactions.shape
    return [n_users if fs.user_features is None else fs.user_features.shape[1],
            n_items if fs.item_features is None else fs.item_features.shape[1]]


def _validation_label(fs: FeatureSet, number: int, count: int) -> str:
    share = "" if count == 1 else f", identity share {fs.identity_weight:g} ({number} of {count})"
    return f"fit LightFM on the validation split{share}"


def fit_incremental(fs: FeatureSet, params: TrainParams, warm: WarmStart, num_threads: int,
                    say: Say = quiet, min_held_out: int = MIN_HELD_OUT) -> FitResult | str:
    """Continue the saved model on this export: an early-stopped run validated on held-out new
    pairs, then a refit from the saved model on everything for the best epoch count.

    Returns the result, or why a full fit is needed instead (too few new pairs to validate).
    The result's ``warm_baseline`` is the saved model's own P@10 on the same pairs.
    """
    seconds: dict[str, float] = {}
    if warm.identity_weight is not None and fs.reweightable():
        # The carried embeddings were learnt with this share; keep the rows on that scale.
        fs = fs.with_identity_weight(warm.identity_weight)
    train_part, held_out = split_new_pairs(fs.interactions.tocsr(), warm.old_pairs,
                                           params.validation_fraction, params.seed)
    if held_out.nnz < min_held_out:
        return (f"only {held_out.nnz} new interactions to validate on (at least "
                f"{min_held_out} needed)")
    split = Validation.of(fs, train_part, held_out, params)
    with timed(seconds, "validation_fit"):
        run = _early_stopped(fs, params, split, num_threads, say,
                             f"fit LightFM from the saved model {warm.source_version} on the "
                             "validation split (new interactions held out)",
                             model=warm_model(params, fs, warm))
    return _finish(split, [run], run, num_threads, seconds, say, warm)


def fit_fixed(fs: FeatureSet, params: TrainParams, epochs: int, num_threads: int,
              interactions: sp.coo_matrix | None = None,
              weights: sp.coo_matrix | None = None) -> FitResult:
    """A plain fit for a given number of epochs (the original's way), no validation."""
    seconds: dict[str, float] = {}
    with timed(seconds, "fit"):
        model = _new_model(params, fs)
        model.fit_partial(fs.interactions if interactions is None else interactions,
                          user_features=fs.user_features, item_features=fs.item_features,
                          sample_weight=fs.weights if weights is None else weights,
                          epochs=epochs, num_threads=num_threads)
    return FitResult(model, fs, epochs, {}, [], seconds, epochs_trained=epochs)
