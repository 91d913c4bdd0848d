"""What the explorer shows of an item and of a tenant, from the published version.

An item's similar items are ``api.lists.similar_list``'s, the list /similar-items serves; its
labels, text and counts, and the tenant's figures, were computed when the version was published
(published.explore), so a page costs a few reads whatever the tenant's size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from api import envelope, lists
from api.explain import ItemRef
from api.foldin import ModelArrays
from api.reader import Reader, Version
from published import explore, keys
from published.explore import ItemInfo, QualityPoint
from published.runs import RunMeta
from runtime.items import FAMILIES, FAMILY_OF_TYPE, ITEM_TYPES, parse_item_key

SHOWN = 10
MAX_TENANTS = 1000


@dataclass
class Similar:
    item: ItemRef
    score: str  # as /similar-items formats it


@dataclass
class ItemView:
    tenant: str
    version: str
    item: ItemRef
    in_model: bool  # /similar-items knows it
    info: ItemInfo | None  # None: not published for this version
    similar: list[Similar] = field(default_factory=list)


@dataclass
class Counted:
    item: ItemRef
    users: int


@dataclass
class TypeCoverage:
    item_type: str
    catalogue: int
    covered: int


@dataclass
class TenantView:
    tenant: str
    version: str
    status: str
    algorithm: str
    trained: str
    sizes: dict[str, int | None]
    quality: list[QualityPoint]
    coverage: float | None  # share of the catalogue in anyone's first NEAR_TOP entries
    coverage_by_type: list[TypeCoverage]
    most_recommended: list[Counted]
    message: str = ""


def _typed(model: ModelArrays | None, type_code: int, numbers: list[int]) -> list[ItemRef]:
    """The similar ids with their type: a family of two types (articles and micro-learning)
    shares one id space, so the model says which type each id is."""
    family = FAMILIES[FAMILY_OF_TYPE[type_code]]
    if len(family) == 1 or model is None:
        return [ItemRef.of(type_code, n) for n in numbers]
    found: dict[int, int] = {}
    for member in reversed(family):
        rows = model.rows((np.int64(member) << 32) | np.array(numbers, dtype=np.int64))
        found.update({n: member for n, row in zip(numbers, rows.tolist(), strict=True)
                      if row >= 0})
    return [ItemRef.of(found.get(n, type_code), n) for n in numbers]


def item(reader: Reader, version: Version, key: str) -> ItemView | None:
    """The item's page; None when ``key`` is not an item key."""
    parsed = parse_item_key(key)
    if parsed is None:
        return None
    type_code, number = parsed
    info = explore.read_item(reader.client(), version.tenant, version.version, number, key)
    view = ItemView(version.tenant, version.version, ItemRef.of(type_code, number), False, info)
    found = lists.similar_list(reader, version, key)
    if found is not None:
        view.in_model = True
        ids, scores = found[0][:SHOWN].tolist(), found[1][:SHOWN].tolist()
        refs = _typed(reader.model(version), type_code, ids)
        view.similar = [Similar(ref, envelope.SCORE % score)
                        for ref, score in zip(refs, scores, strict=True)]
    return view


def tenant(reader: Reader, version: Version) -> TenantView:
    meta = RunMeta.from_fields(version.meta)
    figures = explore.read_figures(reader.client(), version.tenant, version.version)
    trained = ("-" if meta.trained_at is None else
               time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(meta.trained_at)))
    view = TenantView(version.tenant, version.version, str(meta.status or "incomplete"),
                      meta.algorithm or "-", trained,
                      {"users": meta.n_users, "items": meta.n_items,
                       "interactions": meta.n_interactions}, [], None, [], [],
                      message=meta.message or "")
    if figures is not None:
        view.quality = figures.quality
        view.coverage = round(figures.coverage, 4)
        view.coverage_by_type = [TypeCoverage(ITEM_TYPES[t], n, c) for t, (n, c) in
                                 enumerate(zip(figures.catalogue, figures.covered, strict=True))]
        view.most_recommended = [Counted(ItemRef.of(t, n), users)
                                 for t, n, users in figures.most_recommended]
    return view


def tenants(reader: Reader) -> list[str]:
    """The published tenants, in number order (tenants are whole numbers in the contract)."""
    names = [m.decode() for m in reader.client().srandmember(keys.TENANTS, MAX_TENANTS) or []]
    return sorted(names, key=lambda t: (len(t), t))
