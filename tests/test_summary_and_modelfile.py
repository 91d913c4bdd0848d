"""train_summary.log keeps the original's format; saved models load without pickle."""

import pytest

from published import summary
from recommender.publish import modelfile
from tests.factories import saved_model


def test_summary_log_has_the_original_header_and_keeps_the_newest_100_rows(tmp_path):
    for i in range(105):
        summary.append(tmp_path, "hybrid", str(i), "trained", 7, 64, 0.91234)
    lines = (tmp_path / "train_summary.log").read_text().splitlines()
    assert lines[0] == "TIMESTAMP,ALGORITHM,TENANT_ID,MSG,EPOCHS,N_EMBEDDINGS,SCORE"
    assert len(lines) == 101
    rows = summary.read(tmp_path)
    assert rows[0]["TENANT_ID"] == "5" and rows[-1]["TENANT_ID"] == "104"
    assert rows[-1]["SCORE"] == "0.9123" and rows[-1]["EPOCHS"] == "7"


def test_a_message_with_commas_and_quotes_stays_one_field(tmp_path):
    summary.append(tmp_path, "mf", "all", 'download failed: 404, "gone"')
    assert summary.read(tmp_path)[0]["MSG"] == 'download failed: 404, "gone"'


def test_saved_model_loads_back_without_pickle_and_current_marks_the_published_one(tmp_path):
    model = saved_model(n_items=5)
    model.item_keys[:2] = ["engage_article1", "totara_playlist2"]
    modelfile.save(tmp_path, "4", "v1", model, {"status": "trained"})
    assert modelfile.current_version(tmp_path, "4") is None  # saved, not yet published
    modelfile.mark_current(tmp_path, "4", "v1")
    loaded, meta = modelfile.load(tmp_path, "4", "v1")
    assert loaded.item_keys.tolist()[:2] == ["engage_article1", "totara_playlist2"]
    assert meta == {"status": "trained"}
    assert modelfile.saved_tenants(tmp_path) == ["4"]


def test_only_the_newest_versions_are_kept(tmp_path):
    for v in ["v1", "v2", "v3", "v4", "v5"]:
        modelfile.save(tmp_path, "0", v, None, {})
        modelfile.mark_current(tmp_path, "0", v)
    kept = sorted(p.stem for p in modelfile.tenant_dir(tmp_path, "0").glob("*.npz"))
    assert kept == ["v3", "v4", "v5"]


def test_an_unwritable_models_dir_raises_oserror_and_leaves_no_partial_file(tmp_path):
    # A file where the tenant's folder should be: fails for root too, unlike permissions
    models = tmp_path / "models"
    models.mkdir()
    (models / "tenant_0").write_text("not a folder")
    with pytest.raises(OSError):
        modelfile.save(models, "0", "v1", None, {})
    assert sorted(p.name for p in models.iterdir()) == ["tenant_0"]


def test_a_disk_that_fills_between_the_arrays_and_their_json_leaves_neither(tmp_path,
                                                                            monkeypatch):
    # Given the arrays are written and the disk is full when the JSON sidecar is
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(modelfile.json, "dumps", full)
    with pytest.raises(OSError, match="No space left"):
        modelfile.save(tmp_path, "0", "v1", saved_model(), {})
    # Then no orphaned .npz (never loaded nor pruned without its JSON) stays behind
    assert list((tmp_path / "tenant_0").iterdir()) == []
