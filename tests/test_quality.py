"""The default training is good where it matters: held-out interactions and cold start."""

import numpy as np
import pytest

from recommender.ingest import export
from recommender.model import features, train
from recommender.model.ranking import ranking_report
from recommender.offline import contenders, demo, evaluate, splits
from tests.factories import make_export


@pytest.fixture(scope="module")
def demo_tenant(tmp_path_factory) -> export.TenantExport:
    path = tmp_path_factory.mktemp("demo")
    demo.write_demo_export(path, tenants=1, users=600, items=150, interactions=12000, seed=3)
    return export.load_tenant(path, "0")


def test_default_model_beats_popularity_and_matches_ease_on_demo_data(demo_tenant):
    part = splits.split(demo_tenant, "random", 0.2, seed=0)
    matrix = part.train_matrix()
    models = {m.name: m for m in contenders.fit_baselines(matrix, seed=0)}
    production = contenders.fit_production(part.train, "hybrid", threads=2)
    p10 = {name: ranking_report(m.score, matrix, part.test, (10,))["at"][10]["precision"]
           for name, m in {**models, "production": production}.items()}
    assert p10["production"] > 1.5 * p10["popularity"], p10
    assert p10["production"] >= 0.97 * p10["EASE^R"], p10


def test_cold_users_and_items_are_scored_from_their_features(demo_tenant):
    part = splits.cold_split(demo_tenant, 0.1, seed=0)
    production = contenders.fit_production(part.train, "hybrid", threads=2)
    popularity = contenders.fit_baselines(part.train_matrix(), seed=0, lam=100.0)[0]
    ours, theirs = evaluate.measure_cold(production, part), evaluate.measure_cold(popularity, part)
    assert ours["users"]["precision"] > 1.2 * theirs["users"]["precision"]
    assert ours["items"]["auc"] > 0.65  # popularity cannot rank items nobody has used (0.5)


def test_identity_weight_splits_each_row_between_identity_and_metadata():
    data = make_export(n_users=50, n_items=20, seed=1)
    keep = data.interactions.users != 0  # user 0 becomes cold
    data = splits.keep_interactions(data, keep)
    fs = features.build(data, "partial", identity_weight=0.7)
    rows = fs.user_features.toarray()
    n_users = len(data.users)
    identity, metadata = rows[:, :n_users], rows[:, n_users:]
    assert identity[1, 1] == pytest.approx(0.7)
    assert metadata[1].sum() == pytest.approx(0.3)
    # A cold user has no identity column to learn from; its metadata keeps the warm scale.
    assert identity[0].sum() == 0 and metadata[0].sum() == pytest.approx(0.3)
    other = fs.with_identity_weight(0.2)
    assert other.user_features[1, 1] == pytest.approx(0.2)
    assert fs.user_features[1, 1] == pytest.approx(0.7)  # the original is left as it was
    # "lang" is "en" for everyone: a column no one differs in is left out.
    assert not any(name.startswith("lang:") for name in fs.user_feature_names)


def test_fit_chooses_an_identity_share_and_returns_the_features_it_trained_on():
    data = make_export(n_users=150, n_items=40, seed=2)
    fs = features.build(data, "hybrid")
    before = fs.user_features.copy()
    params = train.TrainParams(components=8, max_epochs=5, patience=2,
                               identity_weights=(0.3, 0.9))
    result = train.fit(fs, params, 1)
    assert result.identity_weight in (0.3, 0.9)
    assert result.features.identity_weight == result.identity_weight
    assert set(result.candidates) == {"0.3", "0.9"}
    assert result.epochs_trained == sum(map(len, result.candidates.values())) + result.epochs
    expected = fs.user_parts.combine(result.identity_weight)
    assert abs(result.features.user_features - expected).max() == 0
    # The caller's features are left as they were built.
    assert fs.identity_weight == features.IDENTITY_WEIGHT
    assert abs(fs.user_features - before).max() == 0
    _, user_emb, _, _ = train.representations(result.model, result.features)
    assert np.isfinite(user_emb).all()
