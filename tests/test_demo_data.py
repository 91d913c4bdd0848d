"""offline.demo: a synthetic export that is valid, deterministic and worth learning from."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from recommender.ingest.export import load_tenant, read_tenants
from recommender.ingest.tables import INTERACTION_COLUMNS, USER_COLUMNS
from recommender.offline.demo import DEMO_NOW, write_demo_export
from recommender.offline.demointeractions import WINDOW_SECONDS
from runtime.items import ITEM_TYPES, TYPE_CODE

SMALL = {"tenants": 3, "users": 600, "items": 150, "interactions": 9000}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    write_demo_export(folder, seed=5, **SMALL)
    return folder


def header(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as f:
        return next(csv.reader(f))


def test_tenants_file_lists_zero_then_the_other_tenants(demo):
    assert (demo / "tenants.csv").read_text() == "tenants\n0\n1\n2\n"
    assert read_tenants(demo) == ["0", "1", "2"]


def test_files_have_exactly_the_contract_columns(demo):
    for tenant in ("0", "1", "2"):
        assert tuple(header(demo / f"user_data_{tenant}.csv")) == USER_COLUMNS
        assert tuple(header(demo / f"user_interactions_{tenant}.csv")) == INTERACTION_COLUMNS
        items = header(demo / f"item_data_{tenant}.csv")
        assert items[0] == "item_id" and tuple(items[1:6]) == ITEM_TYPES
        assert items[-1] == "document"
        tags = items[6:-1]
        assert tags and all(t.startswith(("topic_", "tag_")) for t in tags)
        assert any(t.startswith("topic_") for t in tags) and any(t.startswith("tag_")
                                                                  for t in tags)


def test_every_tenant_loads_and_its_ids_are_consistent(demo):
    sizes = []
    for tenant in ("0", "1", "2"):
        # load_tenant checks that every interaction's user and item exist, ids are unique
        data = load_tenant(demo, tenant)
        sizes.append((len(data.users), len(data.items), len(data.interactions)))
        assert set(data.items.types.tolist()) == set(range(len(ITEM_TYPES)))
        articles = np.isin(data.items.types, [TYPE_CODE["engage_article"],
                                              TYPE_CODE["engage_microlearning"]])
        numbers = data.items.numbers[articles]
        assert len(np.unique(numbers)) == len(numbers)  # one Totara table for both
        assert data.stats["user_interactions_rows"] == len(data.interactions)  # no repeats
    assert sizes[0] == (600, 150, 9000)
    assert len(set(sizes)) == 3  # tenants differ in size


def test_user_and_item_features_are_filled_and_quoted_text_survives(demo):
    data = load_tenant(demo, "0")
    users = data.users
    assert np.mean([bool(t) for t in users.multi["interests"]]) > 0.7
    assert np.mean([bool(t) for t in users.multi["positions"]]) > 0.7
    assert any(users.multi["asp_position"]) and any(users.multi["badges"])
    assert any(users.competencies)
    assert {"en", "fr", "de"} <= set(users.text["lang"])
    assert any("\n" in d for d in users.text["description"])
    assert any("," in d for d in users.text["description"])
    assert any(" " in c for c in users.text["city"])
    assert data.items.tags.sum() > len(data.items)
    assert all(d for d in data.items.documents)


def test_interactions_are_recent_and_about_forty_percent_rated_one(demo):
    data = load_tenant(demo, "1")
    stamps = data.interactions.timestamps
    assert stamps.min() > DEMO_NOW - WINDOW_SECONDS and stamps.max() <= DEMO_NOW
    assert 0.3 < data.interactions.ratings.mean() < 0.5


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    small = {"tenants": 2, "users": 100, "items": 40, "interactions": 800}
    write_demo_export(tmp_path / "a", seed=1, **small)
    write_demo_export(tmp_path / "b", seed=1, **small)
    write_demo_export(tmp_path / "c", seed=2, **small)

    for name in sorted(p.name for p in (tmp_path / "a").iterdir()):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert ((tmp_path / "a" / "user_interactions_0.csv").read_bytes()
            != (tmp_path / "c" / "user_interactions_0.csv").read_bytes())


def test_features_predict_held_out_interactions_better_than_popularity(demo):
    # Given a random 20 % of the interactions held out
    data = load_tenant(demo, "0")
    x = data.interactions
    held_out = np.random.default_rng(0).random(len(x)) < 0.2
    train = ~held_out
    n_items = len(data.items)
    popularity = np.bincount(x.items[train], minlength=n_items).astype(float)
    # A crude feature model: popularity among users who share the user's position.
    position = np.array([hash(tuple(p)) for p in data.users.multi["positions"]])
    groups, group_of_user = np.unique(position, return_inverse=True)
    by_group = np.zeros((len(groups), n_items))
    np.add.at(by_group, (group_of_user[x.users[train]], x.items[train]), 1.0)

    def precision_at_10(score) -> float:
        seen = {}
        for u, i in zip(x.users[train].tolist(), x.items[train].tolist(), strict=True):
            seen.setdefault(u, set()).add(i)
        wanted = {}
        for u, i in zip(x.users[held_out].tolist(), x.items[held_out].tolist(), strict=True):
            wanted.setdefault(u, set()).add(i)
        hits = 0
        for user, items in wanted.items():
            scores = score(user).copy()
            scores[list(seen.get(user, ()))] = -np.inf
            hits += len(set(np.argsort(-scores)[:10].tolist()) & items)
        return hits / (10 * len(wanted))

    # When both rank the items each user has not seen yet
    plain = precision_at_10(lambda u: popularity)
    featured = precision_at_10(lambda u: by_group[group_of_user[u]] + 1e-3 * popularity)

    # Then the features help a lot: the data has structure beyond popularity
    assert featured > 1.5 * plain
