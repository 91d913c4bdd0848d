"""What the explorer reads is published with every version: histories, item facts, figures."""

from __future__ import annotations

from pathlib import Path

import fakeredis
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from published import explore, keys, packing, versions
from recommender import pipeline
from recommender.ingest import export
from recommender.model.params import TrainParams
from recommender.offline import demo
from recommender.publish import restore
from runtime import config
from runtime.items import TYPE_CODE, item_key

FAST = TrainParams(components=8, max_epochs=4, patience=2)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export")
    demo.write_demo_export(folder, tenants=1, users=120, items=50, interactions=2000, seed=4)
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory, export_dir):
    """One training for the module: the tests only read, but for the last one."""
    folder = tmp_path_factory.mktemp("trained")
    settings = config.from_env({
        "ML_TOTARA_URL": "http://127.0.0.1:9", "ML_TOTARA_KEY": "test-shared-secret-0123456789",
        "ML_MODELS_DIR": str(folder / "models"), "ML_LOGS_DIR": str(folder / "logs"),
        "ML_EXPORT_DIR": str(export_dir), "ML_TOP_K": "20"})
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    pipeline.train_tenant(settings, client, "0", params=FAST)
    return settings, client, export.load_tenant(export_dir, "0")


def test_a_users_history_is_their_interactions_newest_first(trained):
    settings, client, data = trained
    version = versions.current_version(client, "0")
    inter = data.interactions
    user_row = int(np.bincount(inter.users).argmax())
    user_id = int(data.users.ids[user_row])
    records = explore.read_history(client, "0", version, user_id)
    mine = inter.users == user_row
    assert len(records) == min(int(mine.sum()), explore.MAX_HISTORY)
    assert list(records["time"]) == sorted(records["time"], reverse=True)
    expected = {(int(i), int(t), int(r)) for i, t, r in
                zip(inter.items[mine], inter.timestamps[mine], inter.ratings[mine], strict=True)}
    assert {(int(r["item"]), int(r["time"]), int(r["rating"])) for r in records} <= expected


def test_an_items_facts_are_its_labels_first_words_and_counts(trained):
    settings, client, data = trained
    version = versions.current_version(client, "0")
    row = 3
    info = explore.read_item(client, "0", version, int(data.items.numbers[row]),
                             data.items.keys[row])
    flagged = data.items.tags.tocsr()[row].indices
    assert info.labels == [data.items.tag_names[j] for j in flagged][:explore.MAX_LABELS]
    assert info.text == " ".join(data.items.documents[row].split()[:explore.TEXT_WORDS])
    assert info.learners == int((data.interactions.items == row).sum())


def _near_top_counts(client, version) -> dict[tuple[int, int], int]:
    counts: dict[tuple[int, int], int] = {}
    for bucket in range(keys.USER_BUCKETS):
        for blob in client.hgetall(keys.user_bucket("0", version, bucket)).values():
            for section in range(blob[1]):
                for number in packing.unpack(blob, section)[0][:explore.NEAR_TOP].tolist():
                    counts[(section, number)] = counts.get((section, number), 0) + 1
    return counts


def test_figures_and_near_top_counts_agree_with_the_published_lists(trained):
    settings, client, data = trained
    version = versions.current_version(client, "0")
    counts = _near_top_counts(client, version)
    figures = explore.read_figures(client, "0", version)
    assert sum(figures.catalogue) == len(data.items)
    assert sum(figures.covered) == len(counts)
    top = max(counts.values())
    assert figures.most_recommended[0][2] == top
    assert counts[figures.most_recommended[0][:2]] == top
    type_code, number = figures.most_recommended[0][:2]
    info = explore.read_item(client, "0", version, number, item_key(type_code, number))
    assert info.near_top == top
    assert len(info.near_top_users) == min(top, explore.NEAR_TOP_USERS)


def test_the_quality_history_continues_over_versions_and_restores(trained):
    # Last in the module: it publishes again and empties the module's Redis.
    settings, client, _ = trained
    pipeline.train_tenant(settings, client, "0", params=FAST, force=True)
    second = versions.current_version(client, "0")
    quality = explore.read_figures(client, "0", second).quality
    assert [p.version for p in quality][-1] == second
    assert len(quality) == 2
    client.flushall()
    restore.restore(settings, client, ["0"])
    restored = versions.current_version(client, "0")
    # Given an emptied Redis, the restored version keeps its histories (saved beside the model).
    assert explore.read_figures(client, "0", restored) is not None
    assert client.hlen(keys.history_bucket("0", restored, 0)) + sum(
        client.hlen(keys.history_bucket("0", restored, b)) for b in range(1, 64)) > 0


@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(-5, 2**33),
                          st.integers(0, 1)), max_size=300))
def test_packed_histories_read_back_clipped_and_bounded(rows):
    items = np.array([r[0] for r in rows], np.int64)
    times = np.array([r[1] for r in rows], np.int64)
    ratings = np.array([r[2] for r in rows], np.int64)
    records = explore.unpack_history(explore.pack_history(items, times, ratings))
    kept = min(len(rows), explore.MAX_HISTORY)
    assert len(records) == kept
    assert records["item"].tolist() == items[:kept].tolist()
    assert records["time"].tolist() == np.clip(times[:kept], 0, 2**32 - 1).tolist()
    assert records["rating"].tolist() == ratings[:kept].tolist()


def test_damaged_values_read_as_absent():
    assert explore.ItemInfo.from_bytes(b"{not json") is None
    assert explore.Figures.from_bytes(b'{"quality": 3}') is None
    assert len(explore.unpack_history(b"\x01\x02")) == 0
    assert TYPE_CODE  # the type codes the figures count by


_SECTION = st.lists(st.integers(0, 2**32 - 1), max_size=14)


@given(st.lists(st.lists(_SECTION, max_size=6), max_size=8), st.integers(0, 12))
def test_heads_of_many_values_are_the_first_ids_that_unpack_reads(values, n):
    blobs = [packing.pack([(np.array(ids, "<u4"), np.zeros(len(ids), "<f4")) for ids in value])
             for value in values]
    expected = sorted((v, s, i) for v, blob in enumerate(blobs) for s in range(blob[1])
                      for i in packing.unpack(blob, s)[0][:n].tolist())
    got = packing.heads(blobs, n)
    assert sorted(zip(*(a.tolist() for a in got), strict=True)) == expected
    assert got[0].tolist() == sorted(got[0].tolist())  # value by value, in the order given
