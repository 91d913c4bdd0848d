"""The re-ranker learns from every positive and a weighted sample of the negatives; the OpenMP
threads it and LightFM run on sleep while they wait."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.model import rerank

ROOT = Path(__file__).resolve().parent.parent


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 3000), st.integers(0, 200), st.integers(1, 50), st.integers(0, 2**32 - 1))
def test_negative_sample_keeps_every_positive_and_weights_negatives_back(n_negatives, n_positives,
                                                                          ratio, seed):
    labels = np.zeros(n_negatives + n_positives, bool)
    labels[np.random.default_rng(seed).permutation(len(labels))[:n_positives]] = True
    rows, weights = rerank.negative_sample(labels, seed, ratio)
    # Given any labels, when sampled, then: every positive is kept, once, at weight 1
    assert np.all(np.diff(rows) > 0)
    assert set(np.flatnonzero(labels)) <= set(rows.tolist())
    assert np.all(weights[labels[rows]] == 1.0)
    negative_weights = weights[~labels[rows]]
    if n_negatives <= ratio * max(n_positives, 1):  # few negatives: all kept, unweighted
        assert len(rows) == len(labels) and np.all(weights == 1.0)
    elif len(negative_weights):
        # the weight undoes the rate: kept negatives x weight estimate all the negatives
        rate = 1.0 / negative_weights[0]
        assert np.allclose(negative_weights, 1.0 / rate)
        assert np.isclose(rate, ratio * max(n_positives, 1) / n_negatives)
        expected, spread = n_negatives * rate, 5 * np.sqrt(n_negatives * rate) + 5
        assert abs(len(negative_weights) - expected) <= spread


def test_negative_sample_is_the_same_for_the_same_seed_and_differs_for_another():
    labels = np.random.default_rng(0).random(20000) < 0.01
    first, _ = rerank.negative_sample(labels, 7)
    again, _ = rerank.negative_sample(labels, 7)
    other, _ = rerank.negative_sample(labels, 8)
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_the_sampled_ranker_still_finds_a_planted_signal():
    # Given 1 % positives driven by one input, when trained on the sample, then it ranks them
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40000, len(rerank.rf.FEATURES))).astype(np.float32)
    x[:, rerank.rf.TYPE_FEATURE] = rng.integers(0, 5, len(x))
    y = x[:, 0] + 0.5 * rng.normal(size=len(x)) > 2.6
    predicted = rerank.train_ranker(x, y, threads=1, seed=0).predict(x)
    top = np.argsort(-predicted)[: int(y.sum())]
    assert y[top].mean() > 0.6


def _wait_policy(env: dict[str, str]) -> str:
    code = "import recommender.model.rerank, os; print(os.environ['OMP_WAIT_POLICY'])"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                          capture_output=True, text=True)
    return done.stdout.strip()


def test_openmp_threads_sleep_while_waiting_unless_the_operator_says_otherwise():
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert _wait_policy(env) == "PASSIVE"
    assert _wait_policy({**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
