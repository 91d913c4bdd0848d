"""published/packing.py: the API's numpy-free head of a list is exactly the decoded list's."""

from __future__ import annotations

import numpy as np
import pytest

from api import envelope
from published import packing


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
