"""Procfile and docker-compose.yml: parseable, and naming what the README promises."""

from __future__ import annotations

import pytest
from honcho.environ import parse_procfile

from tests.conftest import ROOT


def test_procfile_runs_the_api_under_gunicorn_and_the_worker():
    procfile = parse_procfile((ROOT / "Procfile").read_text())
    assert procfile.processes == {
        "web": "gunicorn -c deploy/gunicorn.conf.py 'api.app:create_app()'",
        "worker": "ML_WORKER_INSTANCE=${HONCHO_PROCESS_NAME##*.} python -m consumer",
    }


def test_compose_file_has_the_services_health_checks_and_volumes():
    yaml = pytest.importorskip("yaml")  # not a dependency of the service; present on CI images
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    # Services of a profile (monitoring) start only when asked for: tests/test_deploy_recipes.py.
    services = {name: s for name, s in compose["services"].items() if "profiles" not in s}
    assert set(services) == {"redis", "rabbitmq", "web", "worker"}
    assert all("healthcheck" in service for service in services.values())
    assert "/livez" in " ".join(services["web"]["healthcheck"]["test"])
    assert services["worker"]["command"][:3] == ["python", "-m", "consumer"]
    for name in ("web", "worker"):
        env = services[name]["environment"]
        broker = env["ML_BROKER_URL"]
        assert broker.startswith("amqp://") and "@rabbitmq:5672/" in broker
        assert env["ML_REDIS_URL"] == "redis://redis:6379/0"
        mounts = {volume.split(":")[1] for volume in services[name]["volumes"]}
        assert {env["ML_MODELS_DIR"], env["ML_LOGS_DIR"]} <= mounts
        assert services[name]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert {"models", "logs"} <= set(compose["volumes"])
