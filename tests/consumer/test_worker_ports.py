"""Worker metrics ports: fixed per instance (ML_METRICS_PORT + ML_WORKER_INSTANCE - 1) for any
instance number, checked at start, on ML_WORKER_METRICS_HOST; the recipes' environments as they
set them, and a real worker started under systemd's."""

from __future__ import annotations

import configparser
import os
import shlex
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from waiting import wait_for

from runtime.config import from_env
from runtime.errors import ConfigError
from tests.faults.servers import free_port, stop_process

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "totara-ml-worker@.service"


def unit_environment(instance: str) -> dict[str, str]:
    """The Environment= of the worker unit as systemd expands it for ``worker@<instance>``."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str
    parser.read_string(UNIT.read_text())
    words = shlex.split(parser["Service"]["Environment"].replace("%i", instance))
    return dict(word.split("=", 1) for word in words)


def test_systemd_workers_10_and_99_get_valid_distinct_ports(base_env):
    # Given the unit's environment for worker@1, @10 and @99 / Then each has its own valid port
    ports = [from_env({**base_env, **unit_environment(n)}).metrics_port for n in ("1", "10", "99")]
    assert ports == [9101, 9110, 9199]


@given(base=st.integers(1, 65535), instance=st.integers(1, 65535))
def test_any_instance_gets_base_plus_instance_minus_one_or_a_one_line_error(base, instance):
    env = {"ML_METRICS_PORT": str(base), "ML_WORKER_INSTANCE": str(instance)}
    if base + instance - 1 <= 65535:
        assert from_env(env, require_totara=False).metrics_port == base + instance - 1
    else:
        with pytest.raises(ConfigError) as refused:
            from_env(env, require_totara=False)
        message = str(refused.value)
        assert "\n" not in message and "ML_WORKER_INSTANCE" in message and "65535" in message


@pytest.mark.parametrize("name, value", [("ML_WORKER_INSTANCE", "a"),
                                         ("ML_WORKER_INSTANCE", "0"),
                                         ("ML_WORKER_METRICS_HOST", "every")])
def test_a_bad_instance_or_address_is_refused_naming_the_variable(base_env, name, value):
    with pytest.raises(ConfigError, match=name):
        from_env({**base_env, name: value})


def test_metrics_listen_on_loopback_unless_told_otherwise(base_env):
    assert from_env(base_env).metrics_host == "127.0.0.1"
    assert from_env({**base_env, "ML_WORKER_METRICS_HOST": "0.0.0.0"}).metrics_host == "0.0.0.0"
    assert from_env({**base_env, "ML_METRICS_PORT": "0",
                     "ML_WORKER_INSTANCE": "7"}).metrics_port == 0  # off stays off



def _scrape(port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).status == 200
    except OSError:
        return False


@pytest.mark.integration
def test_a_worker_started_as_systemd_starts_worker_10_serves_its_metrics_port(
        base_env, real_redis_url, tmp_path):
    # Given systemd's environment for worker@10 (its base moved to a free port of this machine)
    port = free_port()
    unit = {**unit_environment("10"), "ML_METRICS_PORT": str(port - 9)}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **base_env, **unit,
           "ML_REDIS_URL": real_redis_url, "ML_BROKER_URL": real_redis_url,
           "ML_BROKER_PREFIX": f"ports{os.getpid()}"}
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "consumer"], cwd=ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        # When it starts / Then its metrics answer on base + 10 - 1, on loopback
        wait_for(lambda: _scrape(port) or worker.poll() is not None, timeout=30,
                 what="the worker's metrics")
        assert worker.poll() is None, log_path.read_text()
        assert f"metrics on http://127.0.0.1:{port}/metrics" in log_path.read_text()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    finally:
        stop_process(worker)


def test_honcho_workers_of_the_procfile_get_consecutive_ports(base_env):
    # Given `honcho start -c worker=3`: honcho names the processes worker.1 .. worker.3 and runs
    # each Procfile line through the shell
    from honcho.environ import expand_processes, parse_procfile

    procfile = parse_procfile((ROOT / "Procfile").read_text())
    command = procfile.processes["worker"].replace(
        "python -m consumer", f"{sys.executable} -c 'from runtime.config import from_env; "
        "print(from_env(require_totara=False).metrics_port)'")
    ports = []
    for process in expand_processes({"worker": command}, concurrency={"worker": 3}):
        env = {**os.environ, **base_env, **process.env}
        env.pop("ML_METRICS_PORT", None)
        ports.append(int(subprocess.run(process.cmd, shell=True, env=env, cwd=ROOT, text=True,
                                        capture_output=True, check=True).stdout))
    # Then each has its own port from the default, as Prometheus expects them
    assert ports == [9102, 9103, 9104]
