"""``python -m consumer publish``: the events it builds, what it sends, how it fails."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from kombu import Connection
from workerkit import drain

from consumer.__main__ import main
from consumer.topology import Topology
from tests.conftest import ROOT


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["publish", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, expected", [
    (["export-ready"], {}),
    (["export-ready", "--tenant", "0", "--tenant", "4"], {"tenants": ["0", "4"]}),
    (["retrain"], {}),
    (["retrain", "--tenant", "4", "--algorithm", "mf"], {"tenant": "4", "algorithm": "mf"}),
    (["train", "--tenant", "4", "--force"], {"tenant": "4", "force": True}),
    (["interaction", "--tenant", "2", "--user-id", "9", "--item-id", "engage_article3",
      "--timestamp", "1700000000", "--rating", "1"],
     {"tenant": "2", "user_id": 9, "item_id": "engage_article3", "timestamp": 1700000000,
      "rating": 1}),
])
def test_dry_run_prints_the_event_each_command_describes(capsys, argv, expected):
    code, out, _ = run(capsys, "--dry-run", "--id", "evt-1", *argv)
    assert code == 0
    event = json.loads(out)
    assert {k: event.pop(k) for k in ("type", "version", "id")} == {
        "type": argv[0], "version": 1, "id": "evt-1"}
    assert isinstance(event.pop("created"), float)
    assert event == expected


def test_common_options_are_accepted_after_the_type_too(capsys):
    code, out, _ = run(capsys, "train", "--tenant", "4", "--id", "evt-2", "--dry-run")
    assert code == 0 and json.loads(out)["id"] == "evt-2"


def test_invalid_arguments_exit_2_with_one_line(capsys):
    code, out, err = run(capsys, "--dry-run", "train", "--tenant", "x{1}")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "tenant must be a tenant id" in err


def test_publish_sends_the_event_to_the_configured_broker(capsys, monkeypatch, base_env, prefix,
                                                          memory_url):
    for name, value in base_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ML_BROKER_URL", memory_url)
    monkeypatch.setenv("ML_BROKER_PREFIX", prefix)
    code, out, _ = run(capsys, "export-ready", "--tenant", "5")
    assert code == 0
    with Connection(memory_url) as connection:
        (message,) = drain(connection, Topology(prefix, amqp=False).events_queue)
    assert message.payload == json.loads(out)
    assert message.delivery_info["routing_key"] == "export-ready"


def test_unreachable_broker_exits_1_with_one_line(base_env, prefix):
    env = {**base_env, "ML_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//",
           "ML_BROKER_PREFIX": prefix, "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "consumer", "publish", "--connect-retries", "1",
                           "export-ready"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().count("\n") == 0 and "could not publish" in done.stderr


def test_bad_configuration_exits_2_before_anything_else(base_env):
    env = {**base_env, "ML_BROKER_PREFIX": "bad prefix!", "ML_BROKER_URL": "memory://localhost/",
           "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "consumer", "publish", "retrain"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2
    assert "ML_BROKER_PREFIX" in done.stderr and done.stderr.strip().count("\n") == 0
