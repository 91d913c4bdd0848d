"""Turn the Open University Learning Analytics Dataset (OULAD) into a Totara export of tenant 0.

Source tables (``/work/shared/data/oulad``, see its README): ``studentInfo.csv``, ``vle.csv`` and
``studentVle.zip`` (``studentVle.txt``, TAB-separated daily click counts). The result is real
learning-platform behaviour in exactly the files Totara writes (contract §4).

Mapping
-------
Users (``user_data_0.csv``), one per student with at least one click, ``user_id`` = id_student.
Features come from the student's latest registration (by presentation) in studentInfo:

- ``organisations``: region, as a code: its 1-based position among the sorted region names;
- ``positions``: highest_education, coded the same way;
- ``asp_position``: age_band, coded the same way;
- ``interests``: every module the student registered for, coded by sorted module code
  (AAA=1, BBB=2, ...), ``|``-joined;
- ``lang`` = ``en``, ``country`` = ``GB``, ``city`` = the region name;
- ``description``: "Student of AAA BBB, <region>, <highest education>, age <band>";
- ``competencies_scale`` and ``badges`` are empty. Gender, disability, deprivation band and
  results are left out on purpose: they are not what a learner would want to be matched on.

Items (``item_data_0.csv``), one per VLE resource with at least one click, numeric id = id_site:

- type from activity_type: long reading (oucontent, resource, dataplus, dualpane, folder) →
  ``engage_article``; short pages (url, page, htmlactivity, glossary) →
  ``engage_microlearning``; discussion and live spaces (forumng, ouwiki, oucollaborate,
  ouelluminate) → ``container_workspace``; assessed activities (quiz, externalquiz,
  questionnaire, repeatactivity) → ``container_course``; navigation pages (homepage, subpage,
  sharedsubpage) → ``totara_playlist``; anything else → ``engage_article``;
- flags ``topic_<activity_type>`` and ``tag_<code_module>``;
- ``document``: "<activity type> <module> <presentation>" plus the planned weeks when known.

Interactions (``user_interactions_0.csv``): one row per student and resource; ``rating`` 1 when
the student used the resource on more than one distinct day (Totara: "interacted more than
once"), else 0; ``timestamp`` = BASE_TIME + the last day offset × 86400 (OULAD days count from
the presentation's start and may be negative).

The dataset is CC BY 4.0: ATTRIBUTION.txt is written next to the files.
"""

from __future__ import annotations

import io
import logging
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from recommender.ingest.export import TENANTS_FILE, interactions_file, items_file, users_file
from recommender.ingest.tables import USER_COLUMNS
from recommender.offline.phpcsv import write_php_csv
from runtime.items import ITEM_TYPES

log = logging.getLogger(__name__)

TENANT = "0"
BASE_TIME = 1_704_067_200  # 2024-01-01 00:00 UTC: day 0 of every presentation
DAY = 86400
# Widened catalogues: periods counted from FIRST_DAY (before any OULAD day, about -30), at most
# PERIODS of them per resource.
FIRST_DAY = -60
PERIODS = 100

ACTIVITY_TYPES: dict[str, str] = {
    **dict.fromkeys(("oucontent", "resource", "dataplus", "dualpane", "folder"),
                    "engage_article"),
    **dict.fromkeys(("url", "page", "htmlactivity", "glossary"), "engage_microlearning"),
    **dict.fromkeys(("forumng", "ouwiki", "oucollaborate", "ouelluminate"),
                    "container_workspace"),
    **dict.fromkeys(("quiz", "externalquiz", "questionnaire", "repeatactivity"),
                    "container_course"),
    **dict.fromkeys(("homepage", "subpage", "sharedsubpage"), "totara_playlist"),
}

ATTRIBUTION = """\
This export is derived from the Open University Learning Analytics Dataset (OULAD):

Kuzilek J., Hlosta M., Zdrahal Z. "Open University Learning Analytics dataset",
Scientific Data 4, 170171 (2017), doi:10.1038/sdata.2017.171.

Licence: Creative Commons Attribution 4.0 International (CC BY 4.0),
https://creativecommons.org/licenses/by/4.0/

Changes: students, VLE resources and daily clicks were turned into the user, item and
interaction files of a Totara Learn recommender export (see recommender/oulad.py for the
mapping); students and resources without clicks were left out.
"""


def _read_clicks(zip_path: Path, max_rows: int | None) -> pa.Table:
    """studentVle.txt straight from the zip: id_student, id_site, date (day offset)."""
    with zipfile.ZipFile(zip_path) as archive:
        name = next(n for n in archive.namelist() if n.endswith("studentVle.txt"))
        with archive.open(name) as member:
            raw = member.read()
    if max_rows is not None:
        # Cut after max_rows data lines (plus the header) without parsing the rest.
        end = 0
        for _ in range(max_rows + 1):
            end = raw.find(b"\n", end) + 1
            if end == 0:
                end = len(raw)
                break
        raw = raw[:end]
    return pacsv.read_csv(
        io.BytesIO(raw), parse_options=pacsv.ParseOptions(delimiter="\t"),
        convert_options=pacsv.ConvertOptions(
            include_columns=["id_student", "id_site", "date"],
            column_types={"id_student": pa.int64(), "id_site": pa.int64(), "date": pa.int64()}))


def _read_tables(src: Path) -> tuple[pa.Table, pa.Table]:
    """vle.csv and the columns of studentInfo.csv the export uses."""
    string = pa.string()
    vle = pacsv.read_csv(src / "vle.csv", convert_options=pacsv.ConvertOptions(
        column_types={"id_site": pa.int64(), "code_module": string, "code_presentation": string,
                      "activity_type": string, "week_from": string, "week_to": string}))
    info = pacsv.read_csv(src / "studentInfo.csv", convert_options=pacsv.ConvertOptions(
        include_columns=["code_module", "code_presentation", "id_student", "region",
                         "highest_education", "age_band"],
        column_types={"id_student": pa.int64(), "code_module": string,
                      "code_presentation": string, "region": string,
                      "highest_education": string, "age_band": string}))
    return vle, info


def _codes(values: list[str]) -> dict[str, str]:
    """Small integer codes, as strings, by sorted value: stable across runs."""
    return {v: str(i + 1) for i, v in enumerate(sorted(set(values)))}


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values; a plain sort beats np.unique's hashing on these sizes."""
    ordered = np.sort(values)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]]


def _pairs(students: np.ndarray, sites: np.ndarray, days: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per (student, site): the pair, its number of distinct days and its last day."""
    day_bits = 10  # OULAD days run from about -30 to 270
    offset = days - days.min()
    if len(days) and offset.max() >= 1 << day_bits:
        raise ValueError("day offsets span more than 1024 days")
    student_ids, site_ids = _distinct(students), _distinct(sites)
    pair = (np.searchsorted(student_ids, students).astype(np.int64) * len(site_ids)
            + np.searchsorted(site_ids, sites))
    pair_day = _distinct((pair << day_bits) | offset)  # sorted: by pair, then by day
    pair_of, day_of = pair_day >> day_bits, pair_day & ((1 << day_bits) - 1)
    last = np.r_[pair_of[1:] != pair_of[:-1], True]
    first = np.r_[True, pair_of[1:] != pair_of[:-1]]
    distinct_days = np.diff(np.r_[np.flatnonzero(first), len(pair_of)])
    unique_pairs = pair_of[last]
    return (student_ids[unique_pairs // len(site_ids)], site_ids[unique_pairs % len(site_ids)],
            distinct_days, day_of[last] + days.min())


def import_oulad(src: Path, dest: Path, *, max_rows: int | None = None,
                 period_days: int | None = None) -> dict[str, int]:
    """Write tenants.csv, tenant 0's three files and ATTRIBUTION.txt into ``dest``.

    ``max_rows`` reads only the first rows of studentVle (for quick tests). ``period_days``
    widens the catalogue: each resource becomes one item per period of that many days of the
    presentation in which it was used (numeric id ``id_site * PERIODS + period``). Returns the
    number of users, items and interactions written.
    """
    started = time.perf_counter()
    clicks = _read_clicks(src / "studentVle.zip", max_rows)
    vle, info = _read_tables(src)

    # Keep clicks whose student and resource are described, so every file agrees.
    known = pc.and_(pc.is_in(clicks["id_student"], value_set=info["id_student"].unique()),
                    pc.is_in(clicks["id_site"], value_set=vle["id_site"].unique()))
    clicks = clicks.filter(known)
    click_days = clicks["date"].to_numpy()
    students, items, days, last_day = _pairs(
        clicks["id_student"].to_numpy(),
        _widened(clicks["id_site"].to_numpy(), click_days, period_days), click_days)
    periods = PERIODS if period_days is not None else None
    sites = _resources(items, periods)

    user_columns = _user_columns(info.to_pylist(), np.unique(students))
    item_columns = _item_columns(vle.to_pylist(), np.unique(items), periods)
    site_type = dict(zip(vle["id_site"].to_pylist(), vle["activity_type"].to_pylist(),
                         strict=True))
    kinds = [ACTIVITY_TYPES.get(site_type[s], "engage_article") for s in sites.tolist()]
    interactions = {
        "user_id": pa.array(students),
        "item_id": pc.binary_join_element_wise(pa.array(kinds), pc.cast(pa.array(items),
                                                                       pa.string()), ""),
        "rating": pa.array((days > 1).astype(np.int8)),
        "timestamp": pa.array(BASE_TIME + last_day.astype(np.int64) * DAY),
    }

    dest.mkdir(parents=True, exist_ok=True)
    (dest / TENANTS_FILE).write_text(f"tenants\n{TENANT}\n")
    write_php_csv(dest / users_file(TENANT), user_columns)
    write_php_csv(dest / items_file(TENANT), item_columns)
    write_php_csv(dest / interactions_file(TENANT), interactions)
    (dest / "ATTRIBUTION.txt").write_text(ATTRIBUTION)
    log.info("OULAD import took %.1f s", time.perf_counter() - started)
    return {"users": len(user_columns["user_id"]), "items": len(item_columns["item_id"]),
            "interactions": len(students)}


def _widened(sites: np.ndarray, days: np.ndarray, period_days: int | None) -> np.ndarray:
    """``sites``, or with ``period_days`` each click's resource and period as one number."""
    if period_days is None:
        return sites
    if period_days < 1:
        raise ValueError(f"period_days={period_days}: at least 1")
    period = (days - FIRST_DAY) // period_days
    if len(period) and (period.min() < 0 or period.max() >= PERIODS):
        raise ValueError(f"period_days={period_days}: days {days.min()}..{days.max()} make "
                         f"periods outside 0..{PERIODS - 1}")
    return sites * PERIODS + period


def _resources(items: np.ndarray, periods: int | None) -> np.ndarray:
    """Each item's resource (id_site): the item itself unless widened into ``periods``."""
    return items // periods if periods is not None else items


def _user_columns(info_rows: list[dict], students: np.ndarray) -> dict[str, pa.Array]:
    regions = _codes([r["region"] for r in info_rows])
    education = _codes([r["highest_education"] for r in info_rows])
    ages = _codes([r["age_band"] for r in info_rows])
    modules = _codes([r["code_module"] for r in info_rows])
    latest: dict[int, dict] = {}
    registered: dict[int, set[str]] = {}
    # "2014J" sorts after "2013J" and "2014B": the last row per student is the newest.
    for row in sorted(info_rows, key=lambda r: r["code_presentation"]):
        latest[row["id_student"]] = row
        registered.setdefault(row["id_student"], set()).add(row["code_module"])
    columns: dict[str, list[str]] = {c: [] for c in USER_COLUMNS}
    for student in students.tolist():
        row, mods = latest[student], sorted(registered[student])
        values = {
            "user_id": str(student), "lang": "en", "city": row["region"], "country": "GB",
            "interests": "|".join(modules[m] for m in mods),
            "asp_position": ages[row["age_band"]], "positions": education[row["highest_education"]],
            "organisations": regions[row["region"]], "competencies_scale": "", "badges": "",
            "description": (f"Student of {' '.join(mods)}, {row['region']}, "
                            f"{row['highest_education']}, age {row['age_band']}"),
        }
        for column in USER_COLUMNS:
            columns[column].append(values[column])
    return {c: pa.array(v, pa.string()) for c, v in columns.items()}


def _item_columns(vle_rows: list[dict], items: np.ndarray,
                  periods: int | None) -> dict[str, pa.Array]:
    """One row per item: its resource's row of vle.csv (``items // periods`` when widened)."""
    by_site = {r["id_site"]: r for r in vle_rows}
    rows = [by_site[s] for s in _resources(items, periods).tolist()]
    activities = sorted({r["activity_type"] for r in rows})
    modules = sorted({r["code_module"] for r in rows})
    kinds = [ACTIVITY_TYPES.get(r["activity_type"], "engage_article") for r in rows]
    columns: dict[str, pa.Array] = {
        "item_id": pa.array([f"{k}{i}" for k, i in zip(kinds, items.tolist(), strict=True)])}
    for item_type in ITEM_TYPES:
        columns[item_type] = pa.array([int(k == item_type) for k in kinds], pa.int8())
    for activity in activities:
        columns[f"topic_{activity}"] = pa.array(
            [int(r["activity_type"] == activity) for r in rows], pa.int8())
    for module in modules:
        columns[f"tag_{module}"] = pa.array([int(r["code_module"] == module) for r in rows],
                                            pa.int8())
    documents = []
    for r, item in zip(rows, items.tolist(), strict=True):
        weeks = (f", weeks {r['week_from']} to {r['week_to']}" if r["week_from"] else "")
        period = f", period {item % periods}" if periods is not None else ""
        documents.append(f"{r['activity_type']} {r['code_module']} {r['code_presentation']}"
                         f"{weeks}{period}")
    columns["document"] = pa.array(documents, pa.string())
    return columns
