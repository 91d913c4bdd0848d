"""Demo tenants trained by the real pipeline into a fake Redis, for the explorer's tests.

Trained once per test module (a few seconds): the explorer shows what the pipeline published,
so its tests read what the pipeline publishes, explorer data included.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path

import fakeredis

from recommender import pipeline
from recommender.ingest import export
from recommender.model.params import TrainParams
from recommender.offline import demo
from runtime import config

PASSWORD = "operator-password-0123"
KEY = "test-shared-secret-0123456789"
FAST = TrainParams(components=8, max_epochs=4, patience=2)
TENANTS = ("0", "1")


def basic(password: str = PASSWORD, user: str = "operator") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def environment(folder: Path, **extra: str) -> dict[str, str]:
    return {"ML_TOTARA_URL": "http://127.0.0.1:9", "ML_TOTARA_KEY": KEY,
            "ML_MODELS_DIR": str(folder / "models"), "ML_LOGS_DIR": str(folder / "logs"),
            "ML_TOP_K": "20", **extra}


@dataclass
class Trained:
    settings: config.Settings
    server: fakeredis.FakeServer
    exports: dict[str, export.TenantExport]

    def client(self) -> fakeredis.FakeRedis:
        return fakeredis.FakeRedis(server=self.server)


def train_demo(folder: Path, versions: int = 1, **extra: str) -> Trained:
    """Tenants 0 and 1 trained; tenant 0 ``versions`` times (its quality history)."""
    demo.write_demo_export(folder / "export", tenants=len(TENANTS), users=120, items=50,
                           interactions=2000, seed=4)
    settings = config.from_env(environment(folder, ML_EXPLORER_PASSWORD=PASSWORD,
                                           ML_EXPORT_DIR=str(folder / "export"), **extra))
    server = fakeredis.FakeServer()
    client = fakeredis.FakeRedis(server=server)
    for tenant in TENANTS:
        pipeline.train_tenant(settings, client, tenant, params=FAST)
    for epochs in range(2, versions + 1):  # other fits, so that P@10 moves between versions
        pipeline.train_tenant(settings, client, "0", force=True,
                              params=TrainParams(components=8, max_epochs=epochs + 3,
                                                 patience=epochs + 3))
    return Trained(settings, server,
                   {t: export.load_tenant(folder / "export", t) for t in TENANTS})
