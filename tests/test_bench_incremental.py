"""The incremental benchmark's simulated next export: what is new and what is tested."""

from __future__ import annotations

import numpy as np

from bench.incremental import _split


def test_new_interactions_are_the_latest_and_the_test_pairs_are_among_them():
    timestamps = np.random.default_rng(0).integers(0, 10_000, 3000)
    new, test = _split(timestamps, 0.1, seed=0)
    assert new.sum() == 300
    assert timestamps[new].min() >= timestamps[~new].max()
    assert not (test & ~new).any()
    assert 60 < test.sum() < 140  # about a third of the new ones
