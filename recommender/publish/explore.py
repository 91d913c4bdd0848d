"""What the operator's explorer reads, written with each version (published.explore).

The export's part (each user's latest interactions, each item's labels and first words) is kept
beside the saved model as ``<version>.explore.npz`` (``Source``), so ``restore`` republishes it
without the export. The lists' part (which items are near the top of whose list) is counted
once, while the lists are computed, and kept with them (recommender.publish.neartop).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import IO, TYPE_CHECKING

import numpy as np
import redis

from published import explore, versions
from published.explore import Figures, ItemInfo, QualityPoint
from published.savedmodel import SavedModel
from recommender.publish.neartop import NearTop
from runtime.items import ITEM_TYPES

if TYPE_CHECKING:  # restore republishes without the export code (pyarrow)
    from recommender.ingest.export import TenantExport

HISTORY_BATCH = 4096


@dataclass
class Source:
    """The export's part, rows as in the saved model (users, then items)."""

    indptr: np.ndarray  # int64 per user row: where its interactions start in the arrays below
    items: np.ndarray  # uint32 item rows, newest first within a user, MAX_HISTORY at most
    times: np.ndarray  # int64 unix seconds
    ratings: np.ndarray  # int8 as Totara sent them
    labels: np.ndarray  # str per item row: its flagged topic_*/tag_* columns, "|"-joined
    texts: np.ndarray  # str per item row: the first words of its document


def from_export(data: TenantExport) -> Source:
    inter, items = data.interactions, data.items
    order = np.lexsort((-inter.timestamps, inter.users))  # by user, newest first
    counts = np.bincount(inter.users, minlength=len(data.users))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(order)) - np.repeat(starts, counts)
    order = order[rank < explore.MAX_HISTORY]
    kept = np.minimum(counts, explore.MAX_HISTORY)
    tags = items.tags.tocsr()
    labels = ["|".join(items.tag_names[j] for j in tags.indices[tags.indptr[i]:tags.indptr[i + 1]]
                       [:explore.MAX_LABELS]) for i in range(len(items))]
    texts = [" ".join(doc.split()[:explore.TEXT_WORDS]) for doc in items.documents]
    return Source(np.concatenate([[0], np.cumsum(kept)]).astype(np.int64),
                  inter.items[order].astype(np.uint32), inter.timestamps[order].astype(np.int64),
                  inter.ratings[order].astype(np.int8), np.asarray(labels, dtype=str),
                  np.asarray(texts, dtype=str))


def save(handle: IO[bytes], source: Source) -> None:
    np.savez(handle, **{f.name: getattr(source, f.name) for f in fields(Source)})


def load(path: Path) -> Source | None:
    """The saved part, None when the version was saved without it or it cannot be read (the
    explorer then shows no history, labels or text for that version)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return Source(**{f.name: data[f.name] for f in fields(Source)})
    except (OSError, ValueError, KeyError):
        return None


def _histories(model: SavedModel, source: Source) -> Iterator[list[tuple[int, bytes]]]:
    """Users' values, batch by batch; the source keeps MAX_HISTORY a user already."""
    every = explore.records(source.items, source.times, source.ratings)
    bounds = source.indptr.tolist()
    batch = []
    for row, user_id in enumerate(model.user_ids.tolist()):
        start, end = bounds[row], bounds[row + 1]
        if end > start:
            batch.append((user_id, every[start:end].tobytes()))
        if len(batch) >= HISTORY_BATCH:
            yield batch
            batch = []
    yield batch


def _infos(model: SavedModel, source: Source | None,
           tally: NearTop) -> Iterator[tuple[str, int, bytes]]:
    learners = np.bincount(model.positives_indices, minlength=len(model.item_numbers))
    for row, (key, number) in enumerate(zip(model.item_keys.tolist(),
                                            model.item_numbers.tolist(), strict=True)):
        labels = str(source.labels[row]) if source is not None else ""
        info = ItemInfo(labels.split("|") if labels else [],
                        str(source.texts[row]) if source is not None else "",
                        int(learners[row]), int(tally.counts[row]), tally.users.get(row, []))
        yield key, number, info.to_bytes()


def figures(client: redis.Redis, tenant: str, version: str, model: SavedModel, tally: NearTop,
            meta: dict) -> Figures:
    """The tenant's figures; the quality history continues the current version's."""
    current = versions.current_version(client, tenant)
    before = explore.read_figures(client, tenant, current) if current else None
    point = QualityPoint(version, _number(meta.get("trained_at")),
                         _number(meta.get("precision_at_10")))
    history = [p for p in (before.quality if before else [])
               if p.trained_at is None or p.trained_at != point.trained_at]  # a restore
    quality = (history + [point])[-explore.QUALITY_VERSIONS:]
    types = model.item_types.astype(np.int64)
    catalogue = np.bincount(types, minlength=len(ITEM_TYPES))
    covered = np.bincount(types[tally.counts > 0], minlength=len(ITEM_TYPES))
    best = np.argsort(-tally.counts, kind="stable")[:explore.MOST_RECOMMENDED]
    most = [(int(types[r]), int(model.item_numbers[r]), int(tally.counts[r]))
            for r in best.tolist() if tally.counts[r] > 0]
    return Figures(quality, catalogue.tolist(), covered.tolist(), most)


def _number(value: object) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def publish(writer: versions.VersionWriter, model: SavedModel, source: Source | None,
            tally: NearTop, meta: dict) -> None:
    """Write the explorer's values; after the user lists, which ``tally`` counted."""
    if source is not None:
        for batch in _histories(model, source):
            writer.write_histories(batch)
    writer.write_item_infos(_infos(model, source, tally))
    writer.write_figures(figures(writer.client, writer.tenant, writer.version, model, tally,
                                 meta).to_bytes())
