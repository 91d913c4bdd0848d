"""Precomputed lists equal brute-force scoring, on small cases with known answers."""

import numpy as np
import scipy.sparse as sp

from published import packing
from recommender.publish import topk
from runtime.items import FAMILY_OF_TYPE, ITEM_TYPES


def _random_embeddings(n_users=37, n_items=53, dim=6, seed=1) -> topk.Embeddings:
    rng = np.random.default_rng(seed)
    positives = sp.random(n_users, n_items, density=0.1, random_state=seed, format="csr")
    positives.data[:] = 1
    types = rng.integers(0, len(ITEM_TYPES), n_items).astype(np.uint8)
    types[:5] = np.arange(5)  # every type present
    return topk.Embeddings(
        user_ids=np.arange(1000, 1000 + n_users), user_emb=rng.normal(size=(n_users, dim)),
        item_keys=[f"{ITEM_TYPES[t]}{i + 1}" for i, t in enumerate(types)],
        item_numbers=np.arange(1, n_items + 1, dtype=np.uint32), item_types=types,
        item_emb=rng.normal(size=(n_items, dim)), item_bias=rng.normal(size=n_items),
        positives=positives, popularity=rng.random(n_items).astype(np.float32))


def assert_lists_rank_by(emb: topk.Embeddings, produced: dict[int, bytes], scores: np.ndarray,
                         k: int) -> None:
    """Each user's list of each type is the ``k`` best unseen items of the type by ``scores``
    (users x items), best first, with those scores."""
    for row, user in enumerate(emb.user_ids):
        seen = set(emb.positives[row].indices)
        for t in range(len(ITEM_TYPES)):
            candidates = [i for i in np.flatnonzero(emb.item_types == t) if i not in seen]
            expected = sorted(candidates, key=lambda i: -scores[row, i])[:k]
            ids, got_scores = packing.unpack(produced[int(user)], t)
            assert ids.tolist() == [int(emb.item_numbers[i]) for i in expected]
            np.testing.assert_allclose(got_scores, scores[row, expected], rtol=1e-4, atol=1e-5)


def test_user_lists_equal_brute_force_ranking_per_type_without_seen_items():
    emb = _random_embeddings()
    k = 4
    # When lists are computed in batches smaller than the user count
    produced = dict(pair for batch in topk.user_lists(emb, k, batch=8) for pair in batch)
    # Then each type's list is the best unseen items of that type, best first
    assert_lists_rank_by(emb, produced, emb.user_emb @ emb.item_emb.T + emb.item_bias, k)


def test_a_user_who_has_seen_nearly_everything_gets_a_shorter_list():
    emb = _random_embeddings(n_users=2, n_items=12)
    emb.positives = sp.csr_matrix(np.array([[1] * 11 + [0], [0] * 12]), dtype=np.float32)
    lists = dict(next(topk.user_lists(emb, 10)))
    sizes = [len(packing.unpack(lists[1000], t)[0]) for t in range(5)]
    assert sum(sizes) == 1
    assert sum(len(packing.unpack(lists[1001], t)[0]) for t in range(5)) == 12


def test_similar_items_are_nearest_by_cosine_within_the_family_and_never_the_item():
    emb = _random_embeddings(n_items=40)
    k = 5
    produced = {key: blob for batch in topk.similar_lists(emb, k, batch=7)
                for key, _, blob in batch}
    unit = emb.item_emb / np.linalg.norm(emb.item_emb, axis=1, keepdims=True)
    family = np.asarray(FAMILY_OF_TYPE)[emb.item_types]
    assert set(produced) == set(emb.item_keys)
    for i, key in enumerate(emb.item_keys):
        cosine = unit @ unit[i]
        candidates = [j for j in np.flatnonzero(family == family[i]) if j != i]
        expected = sorted(candidates, key=lambda j: -cosine[j])[:k]
        ids, scores = packing.unpack(produced[key])
        assert ids.tolist() == [int(emb.item_numbers[j]) for j in expected]
        np.testing.assert_allclose(scores, cosine[expected], rtol=1e-5)


def test_popular_lists_rank_each_type_by_popularity():
    emb = _random_embeddings()
    blob = topk.popular_lists(emb, 3)
    for t in range(len(ITEM_TYPES)):
        rows = np.flatnonzero(emb.item_types == t)
        expected = rows[np.argsort(-emb.popularity[rows], kind="stable")][:3]
        assert packing.unpack(blob, t)[0].tolist() == emb.item_numbers[expected].tolist()


def test_packing_round_trips_and_reports_empty_sections():
    blob = packing.pack([(np.array([42, 7]), np.array([0.8123, -0.0456])), ([], [])])
    ids, scores = packing.unpack(blob, 0)
    assert ids.tolist() == [42, 7]
    np.testing.assert_allclose(scores, [0.8123, -0.0456], rtol=1e-6)
    assert len(packing.unpack(blob, 1)[0]) == 0
    assert len(packing.unpack(blob, 4)[0]) == 0
    assert len(blob) == 2 + 2 * 2 + 2 * 8  # 8 bytes per entry

