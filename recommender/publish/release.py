"""A saved model and its lists published to Redis as a new version, switched in atomically.

Light on purpose: what is published is computed elsewhere (recommender.publish.precompute) or
read back from the lists file (recommender.publish.listsfile), so ``restore`` needs no model code.
"""

from __future__ import annotations

from typing import Any

import redis

from published import versions
from published.savedmodel import SavedModel
from recommender.publish import explore
from recommender.publish.listsfile import Lists
from recommender.publish.neartop import NearTop
from runtime.errors import LockLostError


def publish(client: redis.Redis, tenant: str, version: str, model: SavedModel | None,
            lists: Lists | None, meta: dict[str, Any],
            source: explore.Source | None = None) -> None:
    """Write a whole version and switch to it; on any error the partial version is removed.

    ``model`` and its ``lists`` are None for a tenant saved as not trained: only its meta is
    published. ``source`` is the export's part of what the explorer shows (None: not kept).
    """
    writer = versions.VersionWriter(client, tenant, version)
    try:
        if model is not None:
            writer.write_model(model.model_hash())
        if lists is not None:
            writer.write_popular(lists.popular)
            near_top, users = lists.near_top, lists.users
            if near_top is None or len(near_top.counts) != len(model.item_numbers):
                near_top = NearTop(model.item_types, model.item_numbers)  # an older file
                users = near_top.watch(users)
            for batch in users:
                writer.write_users(batch)
            for items in lists.items:
                writer.write_items(items)
            explore.publish(writer, model, source, near_top, meta)
        scalars = {k: v for k, v in meta.items() if isinstance(v, str | int | float)}
        writer.commit(scalars)
    except (versions.StaleVersionError, LockLostError):
        raise  # the writer removed its version already
    except BaseException:
        writer.abort()
        raise
