"""One very long field in an export stays a clear, short error: quoted values are capped, and
train_summary.log stays readable whatever was written to it."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from published import summary
from recommender.ingest import csvfile
from recommender.ingest.export import load_tenant
from runtime.errors import ExportError, quoted

USERS_HEADER = ("user_id,lang,city,country,interests,asp_position,positions,organisations,"
                "competencies_scale,badges,description\n")
ITEMS_HEADER = ("item_id,container_course,container_workspace,engage_article,"
                "engage_microlearning,totara_playlist,document\n")
LONG = 200_000  # beyond Python's csv field limit (131,072 characters)


def _export(folder: Path, users: str, items: str, interactions: str) -> Path:
    (folder / "user_data_0.csv").write_text(USERS_HEADER + users)
    (folder / "item_data_0.csv").write_text(ITEMS_HEADER + items)
    (folder / "user_interactions_0.csv").write_text("user_id,item_id,rating,timestamp\n"
                                                    + interactions)
    return folder


def test_quoted_keeps_short_values_whole_and_caps_long_ones_with_their_length():
    assert quoted("abc") == "'abc'"
    capped = quoted("x" * LONG)
    assert capped.startswith("'" + "x" * 80) and capped.endswith(f"…' ({LONG:,} characters)")
    assert len(capped) < 120


@pytest.mark.parametrize("where", ["user_id", "item_id", "rating", "competency", "flag",
                                   "column"])
def test_a_200k_character_field_gives_a_short_error_naming_file_and_line(tmp_path, where):
    # Given an export with one field of 200,000 characters in various places
    big = "7" * 50 + "x" * (LONG - 50)
    users, items = "2,en,,,,,,,,,\n", "container_course1,1,0,0,0,0,doc\n"
    interactions = "2,container_course1,1,1700000000\n"
    if where == "user_id":
        users = f"{big},en,,,,,,,,,\n"
    elif where == "item_id":
        items = f"{big},1,0,0,0,0,doc\n"
    elif where == "rating":
        interactions = f"2,container_course1,{big},1700000000\n"
    elif where == "competency":
        users = f"2,en,,,,,,,{big},,\n"
    elif where == "flag":
        items = f"container_course1,{big},0,0,0,0,doc\n"
    _export(tmp_path, users, items, interactions)
    if where == "column":
        (tmp_path / "item_data_0.csv").write_text(ITEMS_HEADER.replace(",document", f",{big}"
                                                                       ",document") + items)

    # When it is read
    with pytest.raises(ExportError) as caught:
        load_tenant(tmp_path, "0")

    # Then the message names the file and line and quotes the value capped, with its length
    message = str(caught.value)
    assert len(message) < 400, message[:500]
    assert " line " in message and ".csv" in message
    assert f"({LONG:,} characters)" in message


def test_summary_log_caps_a_message_beyond_the_csv_field_limit_and_stays_appendable(tmp_path):
    # Given a run whose message is 200,000 characters long
    summary.append(tmp_path, "hybrid", "0", "export rejected: " + "x" * LONG)

    # When later runs append theirs
    summary.append(tmp_path, "hybrid", "0", "Training done", 7, 40, 0.9)

    # Then every row reads back, the long message capped
    rows = summary.read(tmp_path)
    assert [r["MSG"][:16] for r in rows] == ["export rejected:", "Training done"]
    assert len(rows[0]["MSG"]) <= summary.MAX_FIELD_CHARS
    assert f"({LONG + 17:,} characters)" in rows[0]["MSG"]


def test_summary_log_with_an_oversized_field_from_an_older_version_is_read_around_it(tmp_path):
    # Given a log written before messages were capped: a row with a 200,000-character field
    # between two good rows
    with open(tmp_path / summary.FILE_NAME, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(summary.HEADER)
        writer.writerow(["2026-01-01 00:00:00", "hybrid", "0", "first", "", "", ""])
        writer.writerow(["2026-01-01 00:01:00", "hybrid", "0", "y" * LONG, "", "", ""])
        writer.writerow(["2026-01-01 00:02:00", "hybrid", "0", "third", "", "", ""])

    # When it is read and appended to
    before = summary.read(tmp_path)
    summary.append(tmp_path, "hybrid", "0", "fourth")

    # Then the good rows are kept and the damaged one is skipped
    assert [r["MSG"] for r in before] == ["first", "third"]
    assert [r["MSG"] for r in summary.read(tmp_path)] == ["first", "third", "fourth"]


def test_summary_log_of_any_size_is_read_from_its_end_only(tmp_path):
    # Given 40 MiB of one unterminated line, then two rows
    path = tmp_path / summary.FILE_NAME
    path.write_bytes(b'"' + b"z" * (40 << 20) + b"\n")
    summary.append(tmp_path, "mf", "1", "first")
    summary.append(tmp_path, "mf", "2", "second")

    # Then both rows are read, and the rewritten file holds only what is worth keeping
    assert [r["MSG"] for r in summary.read(tmp_path)] == ["first", "second"]
    assert path.stat().st_size < 1000


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(garbage=st.binary(max_size=3000), message=st.text(max_size=300))
def test_summary_log_reads_and_appends_whatever_bytes_the_file_holds(tmp_path, garbage,
                                                                     message):
    # Given a summary log holding any bytes at all (NUL, invalid UTF-8, open quotes)
    (tmp_path / summary.FILE_NAME).write_bytes(garbage)

    # When it is read and appended to, nothing raises and the new row is the last one
    summary.read(tmp_path)
    summary.append(tmp_path, "mf", "3", message)
    rows = summary.read(tmp_path)
    assert rows[-1]["TENANT_ID"] == "3" and rows[-1]["ALGORITHM"] == "mf"
    assert all(len(value) <= summary.MAX_FIELD_CHARS and "\n" not in value
               for row in rows for value in row.values())


def _items_with_a_long_document(folder: Path, size: int) -> Path:
    """An export whose item_data has, on line 3, a document of ``size`` characters: longer
    than the fast parser's block of 8 MiB."""
    users = "".join(f"{i},en,,,,,,,,,\n" for i in range(1, 4))
    items = ("container_course1,1,0,0,0,0,short\n"
             f'container_course2,1,0,0,0,0,"{"word, " * (size // 6)}"\n'
             "container_course3,1,0,0,0,0,x\n")
    return _export(folder, users, items, "1,container_course2,1,1700000000\n")


def test_a_record_longer_than_the_parsers_block_is_read(tmp_path):
    # Given a 20 MiB document (the fast parser reads 8 MiB blocks)
    _items_with_a_long_document(tmp_path, 20 << 20)

    # When the export is read, the document is whole
    items = load_tenant(tmp_path, "0").items

    assert items.keys == ["container_course1", "container_course2", "container_course3"]
    assert len(items.documents[1]) == (20 << 20) // 6 * 6


def test_a_record_over_the_record_limit_is_named_by_file_and_line(tmp_path, monkeypatch):
    # Given records may hold 10 MiB, and line 3 holds 20 MiB
    monkeypatch.setattr(csvfile, "MAX_RECORD_CHARS", 10 << 20, raising=False)
    _items_with_a_long_document(tmp_path, 20 << 20)

    # When the export is read, the error names the file, the line and the size
    with pytest.raises(ExportError) as caught:
        load_tenant(tmp_path, "0")

    assert str(caught.value).startswith("item_data_0.csv line 3: a record of 20,971,")
    assert "10,485,760" in str(caught.value)
