"""published/packing.py: the API's numpy-free head of a list is exactly the decoded list's, and
no value makes a reader raise anything but CorruptListError."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import envelope
from published import packing
from runtime.errors import CorruptListError

ENTRY = re.compile(r'\["\d+", "[ -](\d+\.\d{4}|nan|inf)"\]')


def _random_value(rng: np.random.Generator) -> bytes:
    sections = []
    for _ in range(int(rng.integers(1, 6))):
        count = int(rng.integers(0, 60))
        ids = rng.integers(0, 2**32, count, dtype=np.uint64).astype("<u4")
        # Scores of every magnitude and sign, ties on the .4f rounding boundary included.
        scores = (rng.standard_normal(count) * 10.0 ** rng.integers(-6, 4, count)).astype("<f4")
        scores[: count // 4] = np.float32(0.00005)
        sections.append((ids, scores))
    return packing.pack(sections)


@pytest.mark.parametrize("seed", range(20))
def test_head_gives_the_first_n_entries_that_unpack_gives_as_python_numbers(seed):
    rng = np.random.default_rng(seed)
    blob = _random_value(rng)
    for section in range(blob[1] + 2):  # past the last section too
        ids, scores = packing.unpack(blob, section)
        for n in (1, 5, 25, 1000):
            head_ids, head_scores = packing.head(blob, section, n)
            assert list(head_ids) == ids[:n].tolist()
            assert list(head_scores) == scores[:n].tolist()
            # The answer Totara gets is the same bytes whichever form the list is in.
            assert (envelope.success(head_ids, head_scores, n)
                    == envelope.success(ids, scores, n))


def test_head_refuses_an_unknown_format_like_unpack():
    blob = bytes([9]) + packing.pack([(np.arange(3), np.ones(3))])[1:]
    with pytest.raises(ValueError, match="format 9"):
        packing.head(blob, 0, 5)


def _sections(draw_sections: list[list[tuple[int, float]]]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(np.array([i for i, _ in s], "<u4"), np.array([f for _, f in s], "<f4"))
            for s in draw_sections]


SECTIONS = st.lists(st.lists(st.tuples(st.integers(0, 2**32 - 1),
                                       st.floats(width=32, allow_nan=True)), max_size=40),
                    max_size=6)


def _readable_or_refused(blob: bytes) -> None:
    """Every reader either reads ``blob`` or raises CorruptListError (no IndexError, no
    struct.error, no numpy error); what it reads is an answer Totara can take."""
    for section in range(3):
        try:
            ids, scores = packing.head(blob, section, 25)
        except CorruptListError:
            continue
        items = json.loads(envelope.success(ids, scores, 25))["items"]
        assert all(ENTRY.fullmatch(json.dumps(item)) for item in items), items
    for read in (lambda: packing.unpack(blob, 1), lambda: packing.unpack_all(blob),
                 lambda: packing.heads([blob, packing.pack([])], 3)):
        try:
            read()
        except CorruptListError:
            pass


def _every_reader_refuses(blob: bytes) -> None:
    for read in (lambda: packing.head(blob, 0, 5), lambda: packing.unpack(blob),
                 lambda: packing.unpack_all(blob), lambda: packing.heads([blob], 2)):
        with pytest.raises(CorruptListError):
            read()


def _mutate(blob: bytes, how: str, at: int, byte: int) -> bytes:
    at = at % (len(blob) + 1)
    if how == "truncate":
        return blob[:at]
    if how == "extend":
        return blob + bytes([byte])
    if how == "insert":
        return blob[:at] + bytes([byte]) + blob[at:]
    return blob[:at] + bytes([blob[at] ^ (byte or 1)]) + blob[at + 1:] if at < len(blob) else blob


@settings(max_examples=500, deadline=None)
@given(blob=st.one_of(st.binary(max_size=200),
                      st.binary(max_size=120).map(lambda b: b"\x01" + b)))
def test_any_bytes_are_read_as_a_valid_answer_or_refused_with_one_error(blob):
    _readable_or_refused(blob)


@settings(max_examples=500, deadline=None)
@given(sections=SECTIONS, how=st.sampled_from(["truncate", "extend", "insert", "flip"]),
       at=st.integers(0, 10**6), byte=st.integers(0, 255))
def test_damaged_values_are_read_as_a_valid_answer_or_refused_with_one_error(sections, how, at,
                                                                            byte):
    _readable_or_refused(_mutate(packing.pack(_sections(sections)), how, at, byte))


@settings(max_examples=200, deadline=None)
@given(sections=SECTIONS, cut=st.integers(1, 8))
def test_a_truncated_or_extended_value_is_always_refused(sections, cut):
    blob = packing.pack(_sections(sections))
    _every_reader_refuses(blob[:-cut])
    _every_reader_refuses(blob + b"\x00" * cut)


@pytest.mark.parametrize("blob,message", [
    (b"", "no header"), (b"\x01", "no header"), (b"\x09\x01\x00\x00", "format 9"),
    (b"\x01\x03\x00", "shorter than its header"),
    (b"\x01\x01\x02\x00" + b"\x00" * 8, "does not hold its counts"),
    (b"\x01\x01\x01\x00" + b"\x00" * 9, "does not hold its counts"),
    (b"\x01\x00\x00", "does not hold its counts"),
])
def test_each_kind_of_damage_is_named(blob, message):
    _every_reader_refuses(blob)
    with pytest.raises(CorruptListError, match=message):
        packing.head(blob, 0, 5)
    assert issubclass(CorruptListError, ValueError)
