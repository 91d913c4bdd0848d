"""recommender.ingest.export: parsing a Totara export folder and pinpointing malformed input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from recommender.ingest.export import ExportError, load_tenant, read_tenants
from recommender.ingest.tables import dedupe_latest
from runtime.items import TYPE_CODE

TENANT = "3"
USERS = "user_data_3.csv"
ITEMS = "item_data_3.csv"
INTERACTIONS = "user_interactions_3.csv"

USER_HEADER = ("user_id,lang,city,country,interests,asp_position,positions,organisations,"
               "competencies_scale,badges,description\n")
# Physical lines: user 3's description spans lines 3-4, so user 5 is on line 5.
GOOD_USERS = (USER_HEADER
              + '2,en,Wellington,NZ,11|12,,5,7|8,3:1|4:2.5,,"Likes safety, risk"\n'
              + '3,fr,"Aix, Provence",FR,,6,,,,1,"Line one\nline two"\n'
              + "5,en,,GB,13,,,,,,\n")
ITEM_HEADER = ("item_id,container_course,container_workspace,engage_article,engage_microlearning,"
               "totara_playlist,topic_safety,tag_risk,document\n")
# Physical lines: the playlist's document spans lines 5-6, so the workspace is on line 7.
GOOD_ITEMS = (ITEM_HEADER
              + 'container_course1,1,0,0,0,0,1,0,"Safety course, part 1"\n'
              + 'engage_article2,0,0,1,0,0,0,1,"An ""article"" about risk"\n'
              + "engage_microlearning3,0,0,0,1,0,1,1,Quick read\n"
              + 'totara_playlist4,0,0,0,0,1,0,0,"Playlist\nwith a line break"\n'
              + "container_workspace5,0,1,0,0,0,0,0,Space\n")
INTERACTION_HEADER = "user_id,item_id,rating,timestamp\n"
GOOD_INTERACTIONS = (INTERACTION_HEADER
                     + "2,container_course1,0,1700000000\n"
                     + "2,container_course1,1,1700000500\n"
                     + "3,engage_article2,1,1700000100\n"
                     + "3,engage_article2,0,1700000100\n"
                     + "5,totara_playlist4,0,1700000200\n"
                     + "2,engage_microlearning3,1,1690000000\n")


def write_export(directory: Path, users: str = GOOD_USERS, items: str = GOOD_ITEMS,
                 interactions: str = GOOD_INTERACTIONS, encoding: str = "utf-8") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "tenants.csv").write_text("tenants\n0\n3\n")
    for name, text in ((USERS, users), (ITEMS, items), (INTERACTIONS, interactions)):
        (directory / name).write_bytes(text.encode(encoding))
    return directory


def error_of(directory: Path) -> str:
    with pytest.raises(ExportError) as caught:
        load_tenant(directory, TENANT)
    return str(caught.value)


def with_line(text: str, line: int, new: str) -> str:
    """``text`` with physical line ``line`` (1-based) replaced by ``new``."""
    lines = text.split("\n")
    lines[line - 1] = new
    return "\n".join(lines)


# --------------------------------------------------------------------------- good exports


def test_good_export_parses_users_with_multi_values_competencies_and_quoted_text(tmp_path):
    export = load_tenant(write_export(tmp_path), TENANT)

    users = export.users
    assert users.ids.tolist() == [2, 3, 5]
    assert users.ids.dtype == np.int64
    assert users.text["city"] == ["Wellington", "Aix, Provence", ""]
    assert users.text["description"] == ["Likes safety, risk", "Line one\nline two", ""]
    assert users.multi["interests"] == [["11", "12"], [], ["13"]]
    assert users.multi["organisations"] == [["7", "8"], [], []]
    assert users.multi["asp_position"] == [[], ["6"], []]
    assert users.competencies == [[("3", 1.0), ("4", 2.5)], [], []]


def test_good_export_parses_items_types_tags_and_documents(tmp_path):
    items = load_tenant(write_export(tmp_path), TENANT).items

    assert items.keys == ["container_course1", "engage_article2", "engage_microlearning3",
                          "totara_playlist4", "container_workspace5"]
    assert items.types.tolist() == [TYPE_CODE[k.rstrip("0123456789")] for k in items.keys]
    assert items.numbers.tolist() == [1, 2, 3, 4, 5]
    assert items.tag_names == ["topic_safety", "tag_risk"]
    assert items.tags.toarray().tolist() == [[1, 0], [0, 1], [1, 1], [0, 0], [0, 0]]
    assert items.documents[1] == 'An "article" about risk'
    assert items.documents[3] == "Playlist\nwith a line break"


def test_interactions_keep_the_latest_row_per_user_and_item_later_row_on_ties(tmp_path):
    interactions = load_tenant(write_export(tmp_path), TENANT).interactions

    # Rows index users (2, 3, 5) and items in file order, sorted by (user, item).
    assert interactions.users.tolist() == [0, 0, 1, 2]
    assert interactions.items.tolist() == [0, 2, 1, 3]
    assert interactions.ratings.tolist() == [1, 1, 0, 0]  # user 3's tie: the later row, 0
    assert interactions.timestamps.tolist() == [1700000500, 1690000000, 1700000100, 1700000200]
    assert (interactions.users.dtype, interactions.items.dtype) == (np.int32, np.int32)
    assert interactions.ratings.dtype == np.int8


def test_byte_order_mark_and_crlf_line_ends_are_accepted(tmp_path):
    # Given files starting with a UTF-8 BOM and using \r\n
    crlf = [t.replace("\n", "\r\n") for t in (GOOD_USERS, GOOD_ITEMS, GOOD_INTERACTIONS)]
    directory = write_export(tmp_path, *("\ufeff" + t for t in crlf))

    export = load_tenant(directory, TENANT)

    assert export.users.ids.tolist() == [2, 3, 5]
    assert export.items.keys[0] == "container_course1"
    assert len(export.interactions) == 4


def test_header_only_files_are_an_empty_tenant(tmp_path):
    directory = write_export(tmp_path, USER_HEADER, ITEM_HEADER, INTERACTION_HEADER)

    export = load_tenant(directory, TENANT)

    assert (len(export.users), len(export.items), len(export.interactions)) == (0, 0, 0)
    assert export.items.tags.shape == (0, 2)


def test_stats_and_fingerprint_are_filled_and_the_fingerprint_follows_the_bytes(tmp_path):
    first = load_tenant(write_export(tmp_path / "a"), TENANT)
    same = load_tenant(write_export(tmp_path / "b"), TENANT)
    changed = load_tenant(write_export(tmp_path / "c", interactions=GOOD_INTERACTIONS.replace(
        "1690000000", "1690000001")), TENANT)

    assert first.stats["user_data_rows"] == 3
    assert first.stats["item_data_rows"] == 5
    assert first.stats["user_interactions_rows"] == 6
    assert first.stats["interactions_kept"] == 4
    assert all(first.stats[f"{f}_seconds"] >= 0 for f in
               ("user_data", "item_data", "user_interactions"))
    assert len(first.fingerprint) == 64
    assert first.fingerprint == same.fingerprint != changed.fingerprint


def test_dedupe_latest_matches_a_plain_python_reference_on_random_rows():
    rng = np.random.default_rng(7)
    for _ in range(100):
        n = int(rng.integers(0, 40))
        users = rng.integers(0, 4, n).astype(np.int32)
        items = rng.integers(0, 3, n).astype(np.int32)
        stamps = rng.integers(0, 3, n)
        ratings = rng.integers(0, 2, n).astype(np.int8)

        got = dedupe_latest(users, items, ratings, stamps, 3)

        best: dict[tuple[int, int], int] = {}
        for row in range(n):
            pair = (int(users[row]), int(items[row]))
            if pair not in best or stamps[row] >= stamps[best[pair]]:
                best[pair] = row
        expected = [(u, i, int(ratings[r]), int(stamps[r])) for (u, i), r in sorted(best.items())]
        assert list(zip(got.users.tolist(), got.items.tolist(), got.ratings.tolist(),
                        got.timestamps.tolist(), strict=True)) == expected


# --------------------------------------------------------------------------- tenants.csv


def test_tenants_are_read_in_order_without_repeats(tmp_path):
    (tmp_path / "tenants.csv").write_text("tenants\n0\n7\n3\n7\n")
    assert read_tenants(tmp_path) == ["0", "7", "3"]


def test_missing_tenants_file_means_the_single_tenant_zero(tmp_path):
    assert read_tenants(tmp_path) == ["0"]


@pytest.mark.parametrize("text, message", [
    ("tenants\n0\nabc\n", "tenants.csv line 3: tenant 'abc' is not a whole number"),
    ("tenant\n0\n", "tenants.csv line 1: missing column 'tenants'"),
    ("tenants\n0\n1,2\n", "tenants.csv line 3: 2 fields, expected 1"),
    ("tenants\n0\n1", "tenants.csv line 3: the file is truncated"),
])
def test_malformed_tenants_file_names_the_line(tmp_path, text, message):
    (tmp_path / "tenants.csv").write_text(text)
    with pytest.raises(ExportError, match="^" + message):
        read_tenants(tmp_path)


# --------------------------------------------------------------------------- malformed files


def test_missing_file_is_named(tmp_path):
    directory = write_export(tmp_path)
    (directory / ITEMS).unlink()
    assert error_of(directory) == "item_data_3.csv: the file is missing"


def test_empty_file_is_reported_on_line_1(tmp_path):
    assert error_of(write_export(tmp_path, users="")).startswith(
        "user_data_3.csv line 1: the file is empty")


def test_missing_user_column_is_reported_on_line_1(tmp_path):
    users = GOOD_USERS.replace(",badges", "").replace(",,\"Likes", ",\"Likes")
    assert error_of(write_export(tmp_path, users=users)) == (
        "user_data_3.csv line 1: missing column 'badges'")


def test_missing_interaction_column_is_reported_on_line_1(tmp_path):
    interactions = with_line(GOOD_INTERACTIONS, 1, "user_id,item_id,rating")
    assert error_of(write_export(tmp_path, interactions=interactions)) == (
        "user_interactions_3.csv line 1: missing column 'timestamp'")


def test_missing_item_type_column_is_reported_on_line_1(tmp_path):
    items = with_line(GOOD_ITEMS, 1, ITEM_HEADER.replace("totara_playlist,", "").strip())
    assert error_of(write_export(tmp_path, items=items)) == (
        "item_data_3.csv line 1: missing column 'totara_playlist'")


def test_non_numeric_user_id_in_interactions(tmp_path):
    interactions = with_line(GOOD_INTERACTIONS, 5, "abc,engage_article2,0,1700000100")
    assert error_of(write_export(tmp_path, interactions=interactions)) == (
        "user_interactions_3.csv line 5: user_id 'abc' is not a whole number")


def test_non_numeric_user_id_after_a_quoted_line_break_gets_the_physical_line(tmp_path):
    # Given user 5's row, on physical line 5 because line 3's description holds a line break
    users = with_line(GOOD_USERS, 5, "x5,en,,GB,13,,,,,,")
    assert error_of(write_export(tmp_path, users=users)) == (
        "user_data_3.csv line 5: user_id 'x5' is not a whole number")


def test_empty_user_id_in_interactions(tmp_path):
    interactions = with_line(GOOD_INTERACTIONS, 3, ",container_course1,1,1700000500")
    assert error_of(write_export(tmp_path, interactions=interactions)) == (
        "user_interactions_3.csv line 3: user_id '' is not a whole number")


def test_rating_that_is_not_0_or_1(tmp_path):
    interactions = with_line(GOOD_INTERACTIONS, 3, "2,container_course1,2,1700000500")
    assert error_of(write_export(tmp_path, interactions=interactions)) == (
        "user_interactions_3.csv line 3: rating '2' is not 0 or 1")


@pytest.mark.parametrize("stamp", ["17e8", "-5", "1700000000.5", "yesterday", "170000000000000"])
def test_bad_timestamp(tmp_path, stamp):
    interactions = with_line(GOOD_INTERACTIONS, 6, f"5,totara_playlist4,0,{stamp}")
    assert error_of(write_export(tmp_path, interactions=interactions)) == (
        f"user_interactions_3.csv line 6: timestamp '{stamp}' is not a whole number of seconds")


def test_unknown_item_prefix_in_interactions(tmp_path):
    interactions = with_line(GOOD_INTERACTIONS, 7, "2,foo12,1,1690000000")
    assert error_of(write_export(tmp_path, interactions=interactions)).startswith(
        "user_interactions_3.csv line 7: item_id 'foo12' does not start with a Totara item type")


def test_unknown_item_prefix_in_item_data(tmp_path):
    items = with_line(GOOD_ITEMS, 7, "foo12,0,1,0,0,0,0,0,Space")
    assert error_of(write_export(tmp_path, items=items)).startswith(
        "item_data_3.csv line 7: item_id 'foo12' does not start with a Totara item type")


def test_item_type_flag_that_is_not_0_or_1(tmp_path):
    items = with_line(GOOD_ITEMS, 2, 'container_course1,2,0,0,0,0,1,0,"Safety course, part 1"')
    assert error_of(write_export(tmp_path, items=items)) == (
        "item_data_3.csv line 2: container_course flag '2' is not 0 or 1")


def test_item_type_flags_that_disagree_with_the_prefix(tmp_path):
    items = with_line(GOOD_ITEMS, 3, 'engage_article2,1,0,0,0,0,0,1,"An article"')
    assert error_of(write_export(tmp_path, items=items)) == (
        "item_data_3.csv line 3: item type flags (container_course) disagree with item_id "
        "'engage_article2'")


def test_topic_flag_that_is_not_0_or_1(tmp_path):
    items = with_line(GOOD_ITEMS, 7, "container_workspace5,0,1,0,0,0,yes,0,Space")
    assert error_of(write_export(tmp_path, items=items)) == (
        "item_data_3.csv line 7: topic_safety flag 'yes' is not 0 or 1")


def test_duplicate_user_id(tmp_path):
    users = with_line(GOOD_USERS, 5, "2,en,,GB,13,,,,,,")
    assert error_of(write_export(tmp_path, users=users)) == (
        "user_data_3.csv line 5: duplicate user_id 2")


def test_duplicate_item_id(tmp_path):
    items = with_line(GOOD_ITEMS, 7, "container_course1,1,0,0,0,0,0,0,Again")
    assert error_of(write_export(tmp_path, items=items)) == (
        "item_data_3.csv line 7: duplicate item_id container_course1")


def test_malformed_competency_pair(tmp_path):
    users = with_line(GOOD_USERS, 5, "5,en,,GB,13,,,,7:high,,")
    assert error_of(write_export(tmp_path, users=users)) == (
        "user_data_3.csv line 5: competencies_scale entry '7:high': proficiency is not a number")


def test_unterminated_quote_names_the_line_where_the_field_starts(tmp_path):
    users = with_line(GOOD_USERS, 5, '5,en,,GB,13,,,,,,"never closed')
    assert error_of(write_export(tmp_path, users=users)).startswith(
        "user_data_3.csv line 5: unterminated quote")


def test_stray_quote_in_the_middle_of_a_file(tmp_path):
    # Given a quote opened on line 2 and a quote closed within line 5's description: the
    # quoted field swallows lines 2-5 and the record makes no sense from there
    users = with_line(GOOD_USERS, 2, '2,en,"Wellington,NZ,11|12,,5,7|8,3:1|4:2.5,,Likes safety')
    message = error_of(write_export(tmp_path, users=users))
    assert message.startswith("user_data_3.csv line 2: ")


def test_quote_inside_an_unquoted_field(tmp_path):
    # fputcsv quotes any field holding a quote, so a bare one means the file was damaged
    items = with_line(GOOD_ITEMS, 4, 'engage_microlearning3,0,0,0,1,0,1,1,Quick" read')
    assert error_of(write_export(tmp_path, items=items)) == (
        "item_data_3.csv line 4: broken quoting (a quote inside a field that is not quoted as "
        "a whole)")


def test_wrong_encoding_names_the_line(tmp_path):
    users = with_line(GOOD_USERS, 5, "5,en,Bogot\xe1,CO,13,,,,,,")
    message = error_of(write_export(tmp_path, users=users, encoding="latin-1"))
    assert message.startswith("user_data_3.csv line 5: not UTF-8 (byte 0xe1")


def test_too_few_fields_on_a_row(tmp_path):
    interactions = with_line(GOOD_INTERACTIONS, 4, "3,engage_article2,1")
    assert error_of(write_export(tmp_path, interactions=interactions)) == (
        "user_interactions_3.csv line 4: 3 fields, expected 4")


def test_too_many_fields_on_a_row_after_a_quoted_line_break(tmp_path):
    items = with_line(GOOD_ITEMS, 7, "container_workspace5,0,1,0,0,0,0,0,Space,extra")
    assert error_of(write_export(tmp_path, items=items)) == (
        "item_data_3.csv line 7: 10 fields, expected 9")


def test_quoted_line_break_in_an_interaction_row(tmp_path):
    interactions = with_line(GOOD_INTERACTIONS, 4, '3,"engage_article2\n",1,1700000100')
    assert error_of(write_export(tmp_path, interactions=interactions)).startswith(
        "user_interactions_3.csv line 4: item_id 'engage_article2\n' does not start")


def test_truncated_file(tmp_path):
    interactions = GOOD_INTERACTIONS[:-20]  # cut inside the last row
    assert error_of(write_export(tmp_path, interactions=interactions)).startswith(
        "user_interactions_3.csv line 7: the file is truncated")


def test_interaction_with_a_user_not_in_user_data(tmp_path):
    interactions = with_line(GOOD_INTERACTIONS, 6, "99,totara_playlist4,0,1700000200")
    assert error_of(write_export(tmp_path, interactions=interactions)) == (
        "user_interactions_3.csv line 6: user_id 99 is not in user_data_3.csv")


def test_interaction_with_an_item_not_in_item_data(tmp_path):
    interactions = with_line(GOOD_INTERACTIONS, 6, "5,engage_article77,0,1700000200")
    assert error_of(write_export(tmp_path, interactions=interactions)) == (
        "user_interactions_3.csv line 6: item_id engage_article77 is not in item_data_3.csv")


def test_spaces_around_numbers_are_tolerated_like_pyarrow_does(tmp_path):
    users = with_line(GOOD_USERS, 5, " 5 ,en,,GB,13,,,,,,")
    interactions = with_line(GOOD_INTERACTIONS, 6, "5 ,totara_playlist4, 0, 1700000200")
    export = load_tenant(write_export(tmp_path, users=users, interactions=interactions), TENANT)
    assert export.users.ids.tolist() == [2, 3, 5]
    assert len(export.interactions) == 4


def test_tenant_that_is_not_a_number_never_reaches_a_file_name(tmp_path):
    with pytest.raises(ExportError, match="tenant '../3' is not a whole number"):
        load_tenant(write_export(tmp_path), "../3")


@pytest.mark.parametrize("target", [USERS, ITEMS, INTERACTIONS])
def test_random_corruption_is_accepted_or_reported_with_a_line(tmp_path, target):
    # Given many random one-character edits of one file of a good export
    rng = np.random.default_rng(hash(target) % 2**32)
    original = {USERS: GOOD_USERS, ITEMS: GOOD_ITEMS, INTERACTIONS: GOOD_INTERACTIONS}[target]
    for trial in range(150):
        chars = list(original)
        for _ in range(int(rng.integers(1, 3))):
            at = int(rng.integers(0, len(chars)))
            edit = str(rng.choice(list(',"\n0a|:x ')))
            if rng.random() < 0.5:
                chars[at] = edit
            else:
                chars.insert(at, edit)
        texts = {USERS: GOOD_USERS, ITEMS: GOOD_ITEMS, INTERACTIONS: GOOD_INTERACTIONS,
                 target: "".join(chars)}
        directory = write_export(tmp_path / str(trial), texts[USERS], texts[ITEMS],
                                 texts[INTERACTIONS])
        # When it is loaded, then it either parses or the message points at a line
        try:
            load_tenant(directory, TENANT)
        except ExportError as exc:
            assert re.match(r"^\w+_3\.csv line \d+: ", str(exc)), str(exc)
