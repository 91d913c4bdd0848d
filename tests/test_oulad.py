"""offline.oulad on the real OULAD tables (skipped when ../shared/data/oulad is absent)."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pytest

from recommender.ingest.export import load_tenant, read_tenants
from recommender.offline.oulad import (
    ACTIVITY_TYPES,
    BASE_TIME,
    FIRST_DAY,
    PERIODS,
    _widened,
    import_oulad,
)
from runtime.items import ITEM_TYPES


@pytest.fixture(scope="module")
def full_import(tmp_path_factory: pytest.TempPathFactory,
                oulad_dir: Path) -> tuple[Path, dict[str, int]]:
    dest = tmp_path_factory.mktemp("oulad")
    return dest, import_oulad(oulad_dir, dest)


def first_clicks(src: Path, rows: int) -> list[dict[str, str]]:
    with zipfile.ZipFile(src / "studentVle.zip") as archive:
        with archive.open("studentVle.txt") as member:
            reader = csv.DictReader(io.TextIOWrapper(member, "utf-8", newline=""),
                                    delimiter="\t")
            return [row for _, row in zip(range(rows), reader, strict=False)]


def test_full_import_is_a_valid_export_with_the_readme_sizes(full_import):
    dest, counts = full_import

    data = load_tenant(dest, "0")

    # The README: about 4,080 students, 1,029 resources, 149,259 student-resource pairs
    assert counts == {"users": 4080, "items": 1029, "interactions": 149259}
    assert (len(data.users), len(data.items), len(data.interactions)) == (4080, 1029, 149259)
    assert read_tenants(dest) == ["0"]
    assert sorted(p.name for p in dest.iterdir()) == [
        "ATTRIBUTION.txt", "item_data_0.csv", "tenants.csv", "user_data_0.csv",
        "user_interactions_0.csv"]


def test_every_user_and_item_has_interactions(full_import):
    data = load_tenant(full_import[0], "0")
    assert len(np.unique(data.interactions.users)) == len(data.users)
    assert len(np.unique(data.interactions.items)) == len(data.items)


def test_attribution_names_the_paper_and_the_licence(full_import):
    text = (full_import[0] / "ATTRIBUTION.txt").read_text()
    assert "Kuzilek" in text and "10.1038/sdata.2017.171" in text
    assert "CC BY 4.0" in text


def test_items_get_types_topics_and_module_tags_from_the_vle_table(full_import, oulad_dir):
    data = load_tenant(full_import[0], "0")
    with open(oulad_dir / "vle.csv", newline="") as f:
        vle = {int(r["id_site"]): r for r in csv.DictReader(f)}

    for key, type_code, number, row in zip(data.items.keys, data.items.types.tolist(),
                                           data.items.numbers.tolist(),
                                           data.items.tags.toarray(), strict=True):
        source = vle[number]
        assert ITEM_TYPES[type_code] == ACTIVITY_TYPES.get(source["activity_type"],
                                                           "engage_article")
        assert key == f"{ITEM_TYPES[type_code]}{number}"
        flagged = {data.items.tag_names[j] for j in np.flatnonzero(row)}
        assert flagged == {f"topic_{source['activity_type']}", f"tag_{source['code_module']}"}
    assert len(set(data.items.types.tolist())) == len(ITEM_TYPES)


def test_users_carry_region_education_age_and_modules(full_import):
    users = load_tenant(full_import[0], "0").users
    assert all(len(o) == 1 for o in users.multi["organisations"])  # region
    assert all(len(p) == 1 for p in users.multi["positions"])  # highest education
    assert all(len(a) == 1 for a in users.multi["asp_position"])  # age band
    assert all(i for i in users.multi["interests"])  # modules
    assert {t for ts in users.multi["organisations"] for t in ts} <= {str(c)
                                                                      for c in range(1, 14)}
    assert "Student of AAA" in users.text["description"][0]


def test_ratings_and_timestamps_follow_the_daily_clicks(tmp_path, oulad_dir):
    # Given only the first 20,000 click rows
    counts = import_oulad(oulad_dir, tmp_path, max_rows=20_000)
    data = load_tenant(tmp_path, "0")
    days: dict[tuple[int, int], set[int]] = {}
    for row in first_clicks(oulad_dir, 20_000):
        days.setdefault((int(row["id_student"]), int(row["id_site"])), set()).add(
            int(row["date"]))

    # Then one interaction per pair, rated 1 for use on several days, stamped with the last day
    assert counts["interactions"] == len(days) == len(data.interactions)
    x = data.interactions
    for u, i, rating, stamp in zip(x.users.tolist(), x.items.tolist(), x.ratings.tolist(),
                                   x.timestamps.tolist(), strict=True):
        seen = days[(int(data.users.ids[u]), int(data.items.numbers[i]))]
        assert rating == int(len(seen) > 1)
        assert stamp == BASE_TIME + max(seen) * 86400


def test_a_widened_catalogue_has_one_item_per_resource_and_period_of_use(tmp_path, oulad_dir):
    # Given the first 20,000 click rows, widened to periods of 14 days
    import_oulad(oulad_dir, tmp_path, max_rows=20_000, period_days=14)
    data = load_tenant(tmp_path, "0")
    days: dict[tuple[int, int], set[int]] = {}
    for row in first_clicks(oulad_dir, 20_000):
        day = int(row["date"])
        item = int(row["id_site"]) * PERIODS + (day - FIRST_DAY) // 14
        days.setdefault((int(row["id_student"]), item), set()).add(day)

    # Then one interaction per student, resource and period, rated and stamped within it
    x = data.interactions
    assert len(x) == len(days)
    for u, i, rating, stamp in zip(x.users.tolist(), x.items.tolist(), x.ratings.tolist(),
                                   x.timestamps.tolist(), strict=True):
        seen = days[(int(data.users.ids[u]), int(data.items.numbers[i]))]
        assert rating == int(len(seen) > 1)
        assert stamp == BASE_TIME + max(seen) * 86400
    # and each item keeps its resource's type, with the period in its document
    resources = {number // PERIODS for number in data.items.numbers.tolist()}
    assert len(data.items) > len(resources)
    assert all(", period " in text for text in data.items.documents)


def test_a_period_that_makes_too_many_periods_is_refused():
    # Given clicks over 300 days: periods of one day would be 300, more than PERIODS
    days = np.arange(-20, 280)
    for period_days in (1, 0, -7):
        with pytest.raises(ValueError, match=f"period_days={period_days}"):
            _widened(np.ones_like(days), days, period_days)
    assert _widened(np.ones_like(days), days, 7).max() < 2 * PERIODS
