"""Re-ranked lists found among the candidates equal those ranked over every item: the same
bytes where no two scores tie; where some do, the same scores, and the same items per score
above the last (tied items may come in either order, and either may be the one cut)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from published import packing
from recommender.model import ensemble
from recommender.model import rerankfeatures as rf
from recommender.publish import topk
from tests.test_rerank import reranked_embeddings


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), n_users=st.integers(1, 12), k=st.integers(1, rf.CANDIDATES),
       many=st.booleans(), cold=st.integers(0, 3))
def test_lists_from_the_candidates_are_those_ranked_over_every_item(seed, n_users, k, many,
                                                                    cold):
    # Given a re-ranked tenant, with more items of a type than candidates or fewer
    emb = reranked_embeddings(n_users, 320 if many else 40, seed, cold)
    # When its lists are found among the candidates, and again by ranking every item
    fast = [pair for batch in topk.user_lists(emb, k, batch=5) for pair in batch]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ensemble, "best_lists", lambda *args: None)
        full = [pair for batch in topk.user_lists(emb, k, batch=5) for pair in batch]
    # Then they are the same bytes
    assert fast == full


def test_more_than_the_candidates_is_ranked_over_every_item():
    emb = reranked_embeddings(6, 40, seed=3, cold=1)
    assert ensemble.best_lists(lambda rows: rows, emb.positives, emb.repeats, emb.item_item,
                               emb.blend_weight, emb.ranker, emb.item_types,
                               rf.CANDIDATES + 1) is None


def _both_paths(emb, k: int) -> tuple[list, list]:
    fast = [pair for batch in topk.user_lists(emb, k, batch=5) for pair in batch]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ensemble, "best_lists", lambda *args: None)
        full = [pair for batch in topk.user_lists(emb, k, batch=5) for pair in batch]
    return fast, full


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, rf.CANDIDATES), tied=st.integers(2, 60))
def test_where_scores_tie_both_paths_give_the_same_scores_and_the_same_items_per_score(
        seed, k, tied):
    # Given items of each type with the same LightFM vector and bias (alike new items), so
    # users without history see ties, which either path may break its own way
    emb = reranked_embeddings(10, 320, seed, cold=5)
    for code in range(5):
        alike = np.flatnonzero(emb.item_types == code)[3:3 + tied]
        emb.item_emb[alike], emb.item_bias[alike] = emb.item_emb[alike[0]], emb.item_bias[alike[0]]
    fast, full = _both_paths(emb, k)
    for (user, mine), (other, theirs) in zip(fast, full, strict=True):
        assert user == other
        for section in range(5):
            ids, scores = packing.unpack(mine, section)
            want_ids, want_scores = packing.unpack(theirs, section)
            np.testing.assert_array_equal(scores, want_scores)
            # tied items may come in either order; at the cut, either may be the one kept
            for score in np.unique(scores)[1:]:
                assert set(ids[scores == score]) == set(want_ids[want_scores == score])
