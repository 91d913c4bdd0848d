"""The explorer's near-top count is kept in the lists file: publishing reads it instead of
counting the lists again, and writes exactly what counting them would."""

from __future__ import annotations

import fakeredis
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from published import keys, versions
from recommender.publish import listsfile, precompute, release
from recommender.publish.neartop import NearTop
from tests.factories import saved_model

TOP_K = 7


def _explorer_values(client, tenant: str) -> dict[bytes, bytes]:
    """The item facts and figures of the tenant's current version."""
    version = versions.current_version(client, tenant)
    values = {b"figures": client.get(keys.figures(tenant, version))}
    for name in keys.version_keys(tenant, version):
        if ":f:" in name:
            values.update(client.hgetall(name))
    return values


def _publish_from_file(path, model, version: str, keep_count: bool) -> dict[bytes, bytes]:
    """Publish the file on a new fake Redis; its explorer values."""
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    with listsfile.read(path) as lists:
        if not keep_count:  # as a file written before the count was kept
            lists.near_top = None
        release.publish(client, "0", version, model, lists,
                        {"status": "trained"})
    return _explorer_values(client, "0")


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 1000), n_users=st.integers(1, 60), n_items=st.integers(5, 40))
def test_the_kept_count_publishes_what_counting_the_lists_again_would(tmp_path_factory, seed,
                                                                      n_users, n_items):
    # Given a version's lists written to their file with the count taken while computing them
    model = saved_model(n_users=n_users, n_items=n_items, seed=seed)
    path = tmp_path_factory.mktemp("lists") / "v.lists.npz"
    with path.open("wb") as handle:
        listsfile.write(handle, precompute.lists(model, TOP_K))
    # When it is published with the kept count, and again counting the lists as they go
    version = versions.new_version()
    kept = _publish_from_file(path, model, version, keep_count=True)
    counted = _publish_from_file(path, model, version, keep_count=False)
    # Then the explorer's values are the same, and someone is near the top of something
    assert kept == counted
    with listsfile.read(path) as lists:
        assert lists.near_top is not None and lists.near_top.counts.sum() > 0


def test_a_count_round_trips_through_its_arrays_in_the_order_users_were_named():
    model = saved_model(n_users=50, n_items=20)
    lists = precompute.lists(model, TOP_K)
    for _ in lists.users:
        pass
    again = NearTop.from_arrays(**lists.near_top.to_arrays())
    np.testing.assert_array_equal(again.counts, lists.near_top.counts)
    assert again.users == lists.near_top.users


@pytest.mark.parametrize("counts, rows, users", [
    (np.array([1, 2]), np.array([2]), np.array([7])),  # a row past the items
    (np.array([1, -2]), np.array([0]), np.array([7])),  # a negative count
    (np.array([1, 2]), np.array([0, 1]), np.array([7])),  # rows and users disagree
    (np.array([1.5, 2.0]), np.array([0]), np.array([7])),  # counts that are not whole
    (np.array([1, 2]), np.array([0]), np.array([7.5])),  # a user id that is not whole
])
def test_a_count_whose_arrays_disagree_is_refused(counts, rows, users):
    with pytest.raises(ValueError, match="do not agree"):
        NearTop.from_arrays(counts, rows, users)


def test_a_lists_file_with_a_bad_count_is_refused_as_a_whole(tmp_path):
    # Given a lists file whose kept count names a row the model does not have
    model = saved_model(n_users=10, n_items=12)
    lists = precompute.lists(model, TOP_K)
    lists.near_top.users = {99: [1000]}
    path = tmp_path / "v.lists.npz"
    with path.open("wb") as handle:
        listsfile.write(handle, lists)
    # Then reading it fails with the file named, so restore computes the lists again
    with pytest.raises(ValueError, match="v.lists.npz"), listsfile.read(path):
        pass


_arrays = st.builds(
    np.asarray,
    st.lists(st.one_of(st.integers(-3, 40), st.floats(allow_nan=True)), max_size=12))


@settings(max_examples=200, deadline=None)
@given(counts=_arrays, rows=_arrays, users=_arrays)
def test_any_arrays_read_back_give_a_count_that_fits_or_a_clear_error(counts, rows, users):
    # Whatever a damaged file holds, reading the count refuses it or gives one whose named
    # users sit on existing rows: never another exception, never a row past the counts
    try:
        tally = NearTop.from_arrays(counts, rows, users)
    except ValueError as exc:
        assert "do not agree" in str(exc)
        return
    assert all(0 <= row < len(tally.counts) for row in tally.users)
    assert (tally.counts >= 0).all()
