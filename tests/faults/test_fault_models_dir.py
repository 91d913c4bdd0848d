"""ML_MODELS_DIR full or read-only (a real tmpfs, filled or remounted read-only).

The run fails with one clear line naming ML_MODELS_DIR and the system's reason, nothing of the
new model is published, the lists already published are served unchanged, the failure is in
train_summary.log and the tenant's last run, and no partial file is left in the folder.
"""

from __future__ import annotations

import falcon.testing
import pytest
from conftest import KEY
from servers import Tmpfs

from api.app import create_app
from published import keys, summary, versions
from recommender import pipeline
from recommender.model.params import TrainParams
from runtime import config
from runtime.signing import signed_headers

pytestmark = [pytest.mark.integration]

FAST = TrainParams(components=8, max_epochs=4, patience=1, validation_users=200)


@pytest.fixture
def models_fs(tmp_path):
    disk = Tmpfs(tmp_path / "models", size_kb=2048)
    try:
        disk.mount()
    except PermissionError as exc:
        pytest.skip(str(exc))
    yield disk
    disk.unmount()


@pytest.mark.parametrize("fault, reason", [("full", "No space left on device"),
                                           ("read-only", "Read-only file system")])
def test_an_unwritable_models_dir_fails_the_run_and_leaves_the_lists_served(
        fault, reason, fault_env, private_redis, models_fs):
    settings = config.from_env({**fault_env, "ML_REDIS_URL": private_redis.url,
                                "ML_MODELS_DIR": str(models_fs.path)})
    client = private_redis.client()
    # Given tenant 0 trained, saved and served
    first = pipeline.train_tenant(settings, client, "0", params=FAST)
    assert first.status == "published"
    api = falcon.testing.TestClient(create_app(settings, client, broker_url=lambda: "memory://"))

    def served() -> bytes:
        return api.simulate_get("/user-items", params={
            "totara_user_id": "2", "item_type": "container_course", "tenant": "0",
            "n_items": "10"}, headers=signed_headers(KEY)).content

    before = served()
    assert b'"success": true' in before
    files_before = sorted(p.name for p in (models_fs.path / "tenant_0").iterdir())
    # When the disk is full or read-only and the tenant is trained again
    if fault == "full":
        models_fs.fill()
    else:
        models_fs.read_only()
    with pytest.raises(pipeline.ModelStoreError) as failure:
        pipeline.train_tenant(settings, client, "0", params=FAST, force=True)
    # Then the error is one clear line naming the folder and the system's reason
    message = str(failure.value)
    assert "ML_MODELS_DIR=" + str(models_fs.path) in message and reason in message
    assert "\n" not in message
    # And nothing was published: same version, same lists, no new version registered
    assert versions.current_version(client, "0") == first.version
    assert [v.decode() for v in client.zrange(keys.versions("0"), 0, -1)] == [first.version]
    assert served() == before
    # And the failure is recorded for the health check and in train_summary.log
    assert client.hget(keys.last_run("0"), "status") == b"failed"
    assert reason in client.hget(keys.last_run("0"), "message").decode()
    assert reason in summary.read(settings.logs_dir)[-1]["MSG"]
    # And no partial or temporary file is left beside the saved model
    assert sorted(p.name for p in (models_fs.path / "tenant_0").iterdir()) == files_before
