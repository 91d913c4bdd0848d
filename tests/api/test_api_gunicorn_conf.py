"""deploy/gunicorn.conf.py: ML_BIND, worker count, no preload, refusal without a key."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

CONF = Path(__file__).resolve().parents[2] / "deploy" / "gunicorn.conf.py"


def load(monkeypatch, env):
    for name in list(os.environ):
        if name.startswith("ML_") or name == "WEB_CONCURRENCY":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF))


def test_defaults_bind_every_interface_on_port_5000(monkeypatch, base_env):
    conf = load(monkeypatch, base_env)
    assert conf["bind"] == ["0.0.0.0:5000"]
    assert conf["preload_app"] is False
    assert conf["worker_class"] in ("sync", "gthread", "asgi")
    assert 3 <= conf["workers"] <= 17
    assert conf["graceful_timeout"] <= 10


def test_ml_bind_and_web_concurrency(monkeypatch, base_env):
    conf = load(monkeypatch, {**base_env, "ML_BIND": "127.0.0.1:6001 [::1]:6002",
                              "WEB_CONCURRENCY": "3"})
    assert conf["bind"] == ["127.0.0.1:6001", "[::1]:6002"]
    assert conf["workers"] == 3


@pytest.mark.parametrize("value", ["0", "many", "-1"])
def test_bad_web_concurrency_stops_the_start(monkeypatch, base_env, value):
    with pytest.raises(SystemExit):
        load(monkeypatch, {**base_env, "WEB_CONCURRENCY": value})


def test_gunicorn_refuses_to_start_without_the_shared_key(base_env, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_")}
    env.update({k: v for k, v in base_env.items() if k != "ML_TOTARA_KEY"})
    gunicorn = Path(sys.executable).with_name("gunicorn")
    result = subprocess.run([str(gunicorn), "-c", str(CONF), "api.app:create_app()"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=20)
    assert result.returncode != 0
    assert "ML_TOTARA_KEY" in result.stderr
