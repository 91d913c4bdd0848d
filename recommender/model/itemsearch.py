"""Choosing the item-item part on the validation split: how many neighbours per item (k), how
much regularisation (lambda) and how much weight in the blend.

A coarse-to-fine search instead of the full grid: lambda at a middle k first, then k at that
lambda, then lambda's neighbours at the best k, then finer weights, each setting measured on a
sample of the validation users (``quick``). The best blend is measured again on all of them
(``measure``), against LightFM alone, so a blend is kept only where it helps. All the settings of
a step share one gathering of the Gram blocks (recommender.model.neighbours.fit).

The dense closed form (every item a neighbour) is one more k up to ``DENSE_ITEMS``, where it is
affordable; validation decides between it and the sparse forms.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recommender.model import itemitem, neighbours
from recommender.model.itemitem import ItemItem
from recommender.outcome import Say, quiet

log = logging.getLogger(__name__)

ScoreFn = Callable[[np.ndarray], np.ndarray]  # rows -> users x items (recommender.model.ranking)
Measure = Callable[[ScoreFn], float]

KS = (25, 50, 100, 200)
LAMBDAS = (25.0, 100.0, 400.0, 1600.0)
WEIGHTS = (0.5, 2.0)  # tried at every setting
FINER_WEIGHTS = (0.1, 0.25, 1.0, 4.0)  # tried at the best one
DENSE_ITEMS = 3000
WIDE_ITEMS = 20_000  # above it k stops at 100: the solves grow with k^3 per item
ALL = 0  # the k of the dense closed form: every other item


@dataclass(frozen=True)
class Space:
    """The search space (recommender.model.params.TrainParams carries the defaults)."""

    ks: Sequence[int] = KS
    lambdas: Sequence[float] = LAMBDAS
    weights: Sequence[float] = WEIGHTS
    finer_weights: Sequence[float] = FINER_WEIGHTS
    dense_items: int = DENSE_ITEMS
    wide_items: int = WIDE_ITEMS


@dataclass
class Choice:
    """What ``choose`` found on the validation split."""

    k: int | None  # None: no item-item part; ALL: the dense closed form
    lam: float | None
    weight: float  # 0.0: LightFM alone
    precision: dict[str, float] = field(default_factory=dict)  # "k/lambda/weight" -> P@10
    reason: str = ""
    validation_part: ItemItem | None = None  # the part at (k, lambda) on the training part
    validated: float = 0.0  # the choice's P@10 on every validation user
    sampled: float = 0.0  # its P@10 on the sample the settings were ranked on (``quick``)

    @property
    def used(self) -> bool:
        return self.k is not None and self.weight > 0.0

    def describe(self) -> str:
        k = "all items" if self.k == ALL else f"{self.k} neighbours"
        return f"{k}, regularisation {self.lam:g}, weight {self.weight:g}"


def fit_parts(history: sp.spmatrix, settings: list[tuple[int, float]], threads: int = 1,
              near: neighbours.Neighbours | None = None) -> dict[tuple[int, float], ItemItem]:
    """The part at each (k, lambda) on ``history``; k = ALL is the dense closed form. ``near``
    (from the same history) saves finding the neighbours again."""
    co = neighbours.gram(history) if near is None else near.gram
    parts: dict[tuple[int, float], ItemItem] = {}
    sparse = [(k, lam) for k, lam in settings if k != ALL]
    if sparse:
        k_max = max(k for k, _ in sparse)
        if near is None or near.k_max < min(k_max, co.shape[0] - 1):
            near = neighbours.nearest(co, k_max)
        parts.update(neighbours.fit(near, sparse, threads))
    dense = [lam for k, lam in settings if k == ALL]
    if dense:
        full = co.toarray().astype(np.float64)
        for lam in dense:
            parts[(ALL, lam)] = ItemItem.dense(itemitem.ease_weights(full, lam), full)
    return parts


def candidate_ks(n_items: int, space: Space) -> list[int]:
    """The k worth trying for a catalogue: below its size, bounded for wide ones."""
    most = 100 if n_items > space.wide_items else n_items - 2
    ks = sorted({min(k, most) for k in space.ks if min(k, most) >= 1})
    return ks + ([ALL] if n_items <= space.dense_items and n_items >= 2 else [])


def _key(k: int, lam: float, weight: float) -> str:
    return f"{'all' if k == ALL else k}/{lam:g}/{weight:g}"


class _Search:
    """The settings tried so far and the best blend among them, by the quick measure."""

    def __init__(self, history: sp.csr_matrix, lightfm: ScoreFn, quick: Measure, ks: list[int],
                 threads: int, say: Say) -> None:
        self.history = itemitem.binary(history)
        # Found once for the largest k: a smaller k takes the first of the same neighbours.
        self.near = neighbours.nearest(neighbours.gram(self.history), max(ks))
        self.lightfm, self.quick, self.threads, self.say = lightfm, quick, threads, say
        self.precision: dict[str, float] = {"-/0": quick(lightfm)}
        self.fitted: set[tuple[int, float]] = set()
        # The best blend, whether or not it beats LightFM alone: finer weights are tried at it.
        self.best: tuple[float, int, float, float] = (-np.inf, ALL, 0.0, 0.0)
        self.best_part: ItemItem | None = None

    def scorer(self, part: ItemItem, weight: float) -> ScoreFn:
        return lambda rows: itemitem.blend(self.lightfm(rows), self.history[rows], part, weight)

    def run(self, settings: list[tuple[int, float]], weights: Sequence[float]) -> None:
        todo = [s for s in dict.fromkeys(settings) if s not in self.fitted]
        if not todo:
            return
        self.say(f"item-item layer: {len(todo)} settings of {_describe(todo)}", True)
        self.fitted.update(todo)
        for (k, lam), part in fit_parts(self.history, todo, self.threads, self.near).items():
            for weight in weights:
                self.measure(k, lam, weight, part)

    def measure(self, k: int, lam: float, weight: float, part: ItemItem) -> None:
        value = self.quick(self.scorer(part, weight))
        self.precision[_key(k, lam, weight)] = value
        if value > self.best[0]:
            self.best, self.best_part = (value, k, lam, weight), part


def _describe(settings: list[tuple[int, float]]) -> str:
    ks = sorted({"all" if k == ALL else str(k) for k, _ in settings})
    lams = sorted({lam for _, lam in settings})
    return f"k {', '.join(ks)} x lambda {', '.join(f'{lam:g}' for lam in lams)}"


def choose(train_part: sp.csr_matrix, lightfm: ScoreFn, measure: Measure, quick: Measure,
           space: Space = Space(), threads: int = 1, say: Say = quiet) -> Choice:
    """The part (k, lambda) and blend weight with the best validation P@10, or LightFM alone
    when no blend beats it on every validation user (``measure``); ``quick`` ranks the
    settings on a sample of them."""
    ks = candidate_ks(train_part.shape[1], space)
    if not ks or not space.lambdas or not space.weights:
        return Choice(None, None, 0.0, reason="no item-item part configured")
    say("item-item layer: choose its neighbours, regularisation and weight on the validation "
        "split", False)
    search = _Search(train_part, lightfm, quick, ks, threads, say)
    lams = sorted(space.lambdas)
    sparse = [k for k in ks if k != ALL] or ks
    first_k = sparse[(len(sparse) - 1) // 2]
    search.run([(first_k, lam) for lam in lams], space.weights)
    _, _, lam, _ = search.best
    search.run([(k, lam) for k in ks], space.weights)
    _, k, lam, _ = search.best
    search.run([(k, lam / 2), (k, lam * 2)], space.weights)
    top, k, lam, _ = search.best
    part = search.best_part
    assert part is not None
    for finer in sorted(space.finer_weights):
        search.measure(k, lam, finer, part)
    top, k, lam, weight = search.best
    if top <= search.precision["-/0"]:
        return _alone(search, "not used, LightFM alone validates best")
    validated, alone = measure(search.scorer(part, weight)), measure(lightfm)
    log.debug("item-item blend, validation P@10 per k/lambda/weight: %s", search.precision)
    if validated <= alone:
        return _alone(search, "not used, LightFM alone validates best on every user", alone)
    return Choice(k, lam, weight, search.precision, validation_part=part, validated=validated,
                  sampled=top)


def _alone(search: _Search, reason: str, validated: float | None = None) -> Choice:
    return Choice(None, None, 0.0, search.precision, reason,
                  validated=search.precision["-/0"] if validated is None else validated)
