"""What the explorer shows of a learner: their interactions, their lists and why each item.

Everything is read from the published version (docs/redis-keys.md) through the same ``Reader``
as /user-items, and each list is ``api.lists.user_list``'s, so it is the one Totara gets. The
views are dataclasses: the HTML pages render them, the JSON endpoints serialise them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import numpy as np

from api import envelope, lists
from api.foldin import ModelArrays
from api.reader import Reader, Version
from published import explore
from runtime.items import ITEM_TYPES, item_key, parse_item_key

SHOWN = 10  # entries of each list shown (the /user-items n_items the lists are compared with)
POPULAR_REASON = "popular in this tenant"
RECENT_REASON = "from their recent activity"
HISTORY_REASON = "closest to an item of their history"


@dataclass
class ItemRef:
    key: str
    item_type: str
    id: int

    @classmethod
    def of(cls, type_code: int, number: int) -> ItemRef:
        return cls(item_key(type_code, number), ITEM_TYPES[type_code], number)


@dataclass
class Interaction:
    item: ItemRef
    rating: int
    time: int  # unix seconds
    when: str


@dataclass
class Recommended:
    item: ItemRef
    score: str  # as /user-items formats it
    reason: str
    because: ItemRef | None = None  # the item of their history (or recent activity) closest
    similarity: float | None = None  # cosine of the two items' published embeddings


@dataclass
class TypeList:
    item_type: str
    source: str  # api.lists.Source
    items: list[Recommended]


@dataclass
class Learner:
    tenant: str
    version: str
    user_id: int
    in_model: bool  # the user has a published list
    note: str
    history: list[Interaction] = field(default_factory=list)
    recent: list[ItemRef] = field(default_factory=list)  # events since training, newest first
    lists: list[TypeList] = field(default_factory=list)


def _history(records: np.ndarray, model: ModelArrays) -> list[Interaction]:
    known = records[records["item"] < len(model.numbers)]
    return [Interaction(ItemRef.of(int(model.types[r["item"]]), int(model.numbers[r["item"]])),
                        int(r["rating"]), int(r["time"]),
                        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(int(r["time"]))))
            for r in known]


def _recent(reader: lists.ListReader, version: Version, user_id: int) -> list[ItemRef]:
    refs = []
    for raw in reader.recent_events(version.tenant, user_id):
        try:
            parsed = parse_item_key(json.loads(raw)["item_id"])
        except (ValueError, KeyError, TypeError):
            continue
        if parsed is not None:
            refs.append(ItemRef.of(*parsed))
    return refs


def _rows(model: ModelArrays, refs: list[ItemRef]) -> np.ndarray:
    keys = [(ITEM_TYPES.index(r.item_type) << 32) | r.id for r in refs]
    return model.rows(np.array(keys, dtype=np.int64))


def _closest(model: ModelArrays, targets: np.ndarray,
             sources: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each target row, the index into ``sources`` of its nearest row and the cosine."""
    unit_t = model.embeddings[targets]
    unit_s = model.embeddings[sources]
    unit_t = unit_t / np.maximum(np.linalg.norm(unit_t, axis=1, keepdims=True), 1e-12)
    unit_s = unit_s / np.maximum(np.linalg.norm(unit_s, axis=1, keepdims=True), 1e-12)
    sims = unit_t @ unit_s.T
    best = sims.argmax(axis=1)
    return best, sims[np.arange(len(targets)), best]


def _explain(model: ModelArrays | None, entries: list[Recommended], basis: list[ItemRef],
             reason: str) -> None:
    """Name, for each entry, the item of ``basis`` nearest to it."""
    if model is None or not basis or not entries:
        return
    sources = _rows(model, basis)
    known_sources = np.flatnonzero(sources >= 0)
    targets = _rows(model, [e.item for e in entries])
    known_targets = np.flatnonzero(targets >= 0)
    if not len(known_sources) or not len(known_targets):
        return
    best, sims = _closest(model, targets[known_targets], sources[known_sources])
    for index, source, sim in zip(known_targets.tolist(), best.tolist(), sims.tolist(),
                                  strict=True):
        entry = entries[index]
        entry.reason, entry.similarity = reason, round(float(sim), 4)
        entry.because = basis[int(known_sources[source])]


def _type_list(reader: lists.ListReader, version: Version, learner: Learner, type_code: int,
               model: ModelArrays | None) -> TypeList:
    found = lists.user_list(reader, version, learner.user_id, type_code, SHOWN)
    learner.in_model = found.source == lists.Source.PUBLISHED
    default = {lists.Source.POPULAR: POPULAR_REASON, lists.Source.FOLD_IN: RECENT_REASON}.get(
        found.source, "in their published list (no history published for this version)")
    entries = [Recommended(ItemRef.of(type_code, number), envelope.SCORE % score, default)
               for number, score in zip(found.ids, found.scores, strict=True)]
    if found.source == lists.Source.PUBLISHED:
        _explain(model, entries, [h.item for h in learner.history], HISTORY_REASON)
    elif found.source == lists.Source.FOLD_IN:
        _explain(model, entries, learner.recent, RECENT_REASON)
    return TypeList(ITEM_TYPES[type_code], found.source.value, entries)


def learner(reader: Reader, version: Version, user_id: int) -> Learner:
    """The learner's page; ``version`` is trained."""
    view = Learner(version.tenant, version.version, user_id, False, "")
    model = reader.model(version)
    records = explore.read_history(reader.client(), version.tenant, version.version, user_id)
    if records is not None and model is not None:
        view.history = _history(records, model)
    once = lists.OncePerPage(reader)
    view.recent = _recent(once, version, user_id)
    view.lists = [_type_list(once, version, view, t, model) for t in range(len(ITEM_TYPES))]
    view.note = _note(view)
    return view


def _note(view: Learner) -> str:
    if view.in_model:
        return ("In the published model: each list is the one precomputed for them; each item "
                "is explained by the item of their history nearest to it.")
    if any(t.source == lists.Source.FOLD_IN for t in view.lists):
        return (f"Not in the published model: their lists are computed in real time from their "
                f"{len(view.recent)} recent interactions (fold-in).")
    return ("Not in the published model and no recent interactions: a cold answer, the "
            "tenant's popularity lists.")
