"""Re-ranked lists found among the candidates equal those ranked over every item."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
