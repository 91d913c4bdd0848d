"""Property-based tests of the export parser (hypothesis): what fputcsv can write is read back
exactly, and any damage to a file is an exp.ExportError naming the file, never another exception."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.ingest import export as exp
from recommender.ingest import tables
from runtime.items import ITEM_TYPES

TENANT = "7"
FILES = (exp.users_file(TENANT), exp.items_file(TENANT), f"user_interactions_{TENANT}.csv")
# Free text as Totara writes it: any character but NUL, with quotes, commas, line breaks.
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"),
               max_size=40)
TOKENS = st.lists(st.integers(1, 10**6).map(str), max_size=3).map("|".join)
PROPERTIES = settings(max_examples=60, deadline=None,
                      suppress_health_check=[HealthCheck.too_slow])


def _csv(rows: list[list[str]]) -> bytes:
    # PHP's fputcsv: comma, '"' quoting only where needed, quotes doubled, "\n" line ends.
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


@st.composite
def exports(draw) -> dict:
    user_ids = draw(st.lists(st.integers(1, 10**9), min_size=1, max_size=12, unique=True))
    users = [[str(u), draw(TEXT), draw(TEXT), draw(TEXT), draw(TOKENS), draw(TOKENS),
              draw(TOKENS), draw(TOKENS), draw(st.sampled_from(["", "3:1", "4:2.5|5:0"])),
              draw(TOKENS), draw(TEXT)] for u in user_ids]
    numbers = draw(st.lists(st.integers(1, 10**9), min_size=1, max_size=12, unique=True))
    tags = draw(st.integers(0, 3))
    items = []
    for number in numbers:
        kind = draw(st.integers(0, len(ITEM_TYPES) - 1))
        flags = ["1" if k == kind else "0" for k in range(len(ITEM_TYPES))]
        items.append([f"{ITEM_TYPES[kind]}{number}", *flags,
                      *(draw(st.sampled_from("01")) for _ in range(tags)), draw(TEXT)])
    pairs = draw(st.lists(st.tuples(st.sampled_from(user_ids), st.sampled_from(items),
                                    st.integers(0, 1), st.integers(0, 2 * 10**9)), max_size=30))
    interactions = [[str(u), item[0], str(r), str(t)] for u, item, r, t in pairs]
    return {"users": users, "items": items, "tags": [f"topic_{i}" for i in range(tags)],
            "interactions": interactions}


def _write(folder: Path, export: dict) -> dict[str, bytes]:
    files = {
        FILES[0]: _csv([list(tables.USER_COLUMNS), *export["users"]]),
        FILES[1]: _csv([["item_id", *ITEM_TYPES, *export["tags"], "document"],
                        *export["items"]]),
        FILES[2]: _csv([list(tables.INTERACTION_COLUMNS), *export["interactions"]]),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


@PROPERTIES
@given(export=exports())
def test_whatever_fputcsv_writes_is_read_back_exactly(export):
    with tempfile.TemporaryDirectory() as tmp:
        _write(Path(tmp), export)
        data = exp.load_tenant(Path(tmp), TENANT)
    assert data.users.ids.tolist() == [int(row[0]) for row in export["users"]]
    assert data.users.text["city"] == [row[2] for row in export["users"]]
    assert data.users.text["description"] == [row[10] for row in export["users"]]
    assert data.users.multi["interests"] == [[t for t in row[4].split("|") if t]
                                             for row in export["users"]]
    assert data.items.keys == [row[0] for row in export["items"]]
    assert data.items.documents == [row[-1] for row in export["items"]]
    assert data.items.tags.toarray().astype(int).tolist() == [
        [int(f) for f in row[1 + len(ITEM_TYPES):-1]] for row in export["items"]]
    # One interaction per (user, item): the latest row, the later one on equal times.
    latest: dict[tuple[str, str], tuple[int, int]] = {}
    for user, item, rating, stamp in export["interactions"]:
        if (user, item) not in latest or int(stamp) >= latest[(user, item)][1]:
            latest[(user, item)] = (int(rating), int(stamp))
    got = {(str(data.users.ids[u]), data.items.keys[i]): (int(r), int(t)) for u, i, r, t in zip(
        data.interactions.users, data.interactions.items, data.interactions.ratings,
        data.interactions.timestamps, strict=True)}
    assert got == latest


@PROPERTIES
@given(export=exports(), which=st.integers(0, 2), position=st.floats(0, 1),
       damage=st.sampled_from(["cut", "byte", "insert"]), junk=st.binary(min_size=1, max_size=4))
def test_any_damage_is_an_export_error_naming_the_file_or_a_clean_read(export, which, position,
                                                                       damage, junk):
    with tempfile.TemporaryDirectory() as tmp:
        files = _write(Path(tmp), export)
        name = FILES[which]
        data = files[name]
        at = int(position * len(data))
        if damage == "cut":
            broken = data[:at]
        elif damage == "byte":
            broken = data[:at] + junk[:1] + data[at + 1:]
        else:
            broken = data[:at] + junk + data[at:]
        (Path(tmp) / name).write_bytes(broken)
        try:
            exp.load_tenant(Path(tmp), TENANT)
        except exp.ExportError as exc:
            message = str(exc)
            assert message.startswith(FILES), message
            assert "\n" not in message and len(message) < 2000


@PROPERTIES
@given(export=exports(), row=st.integers(0, 29), value=st.sampled_from(
    ["2", "-1", "x", "", "1.0", "1e3"]))
def test_a_bad_rating_is_reported_on_its_exact_line(export, row, value):
    if not export["interactions"]:
        return
    row %= len(export["interactions"])
    export["interactions"][row][2] = value
    with tempfile.TemporaryDirectory() as tmp:
        _write(Path(tmp), export)
        try:
            exp.load_tenant(Path(tmp), TENANT)
        except exp.ExportError as exc:
            # The header is line 1 and interactions never span lines.
            assert str(exc).startswith(f"{FILES[2]} line {row + 2}: rating "), str(exc)
        else:
            raise AssertionError(f"rating {value!r} was accepted")
