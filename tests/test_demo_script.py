"""``bash deploy/demo.sh`` as a new user runs it, in a copy of the repository, on a tiny export.

The install step is left out (the copy shares this checkout's venv; deploy/setup.sh has its own
tests); the rest is the script itself: training, the env file, the stand-in for Totara, the
launcher, Ctrl-C with the output piped into ``tee``, and a second run that reuses the data.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from recommender.offline import demo
from runtime.signing import signed_headers
from tests.faults.servers import free_port, port_open
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """The repository's files (committed or not, ignored ones left out) in a new folder."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
    target = tmp_path / "c"
    for name in filter(None, listed.stdout.decode().split("\0")):
        source = ROOT / name
        if source.is_file() and not source.is_symlink():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(Path(sys.prefix))
    (target / "deploy" / "setup.sh").write_text("exit 0  # installed already: the shared venv\n")
    return target


def _port_and_next_free() -> int:
    """A free port whose next one is free too: the demo puts its Totara stand-in there."""
    for _ in range(50):
        port = free_port()
        try:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise AssertionError("no two consecutive free ports")


def _env(tmp_path: Path) -> dict[str, str]:
    export_dir = tmp_path / "export"
    demo.write_demo_export(export_dir, tenants=2, users=60, items=30, interactions=600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_")}
    env.update(ML_EXPORT_DIR=str(export_dir), ML_BIND=f"127.0.0.1:{_port_and_next_free()}",
               ML_METRICS_PORT=str(free_port()), ML_NUM_THREADS="2")
    return env


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Demo:
    """One ``bash deploy/demo.sh | tee log`` in its own process group, as a terminal runs it."""

    def __init__(self, clone: Path, env: dict[str, str], log: Path) -> None:
        self.clone, self.env, self.log = clone, env, log
        self.port = int(env["ML_BIND"].rsplit(":", 1)[1])
        self.shell = subprocess.Popen(["bash", "-c", f"bash deploy/demo.sh 2>&1 | tee {log}"],
                                      cwd=clone, env=env, start_new_session=True,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.pids: list[int] = []

    def health(self) -> dict | None:
        """The health check's answer once it is true; None until then."""
        key = (self.clone / "data" / "demo-key").read_text().strip()
        try:
            answer = requests.get(f"http://127.0.0.1:{self.port}/health-check", timeout=10,
                                  headers=signed_headers(key)).json()
        except requests.RequestException:
            return None  # gunicorn's workers may still be starting
        return answer if answer["success"] else None

    def wait_serving(self) -> None:
        wait_for(lambda: port_open(self.port) or self.shell.poll() is not None, timeout=120,
                 what="the demo's API listening", interval=0.2)
        assert self.shell.poll() is None, self.log.read_text()
        redis_pid = self.clone / "data" / "redis" / "redis.pid"
        self.pids = [p.pid for p in psutil.Process(self.shell.pid).children(recursive=True)]
        self.pids.append(int(redis_pid.read_text()))

    def ctrl_c(self) -> None:
        os.killpg(self.shell.pid, signal.SIGINT)
        self.shell.wait(timeout=30)
        wait_for(lambda: not any(_alive(pid) for pid in self.pids), timeout=5,
                 what="every process of the demo gone")

    def kill_left(self) -> None:
        """Whatever a failed run leaves, by pid: the processes first, then the Redis they may
        have started again meanwhile."""
        if self.shell.poll() is None:
            os.killpg(self.shell.pid, signal.SIGKILL)
            self.shell.wait()
        for pid in self.pids[:-1]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not any(_alive(pid) for pid in self.pids[:-1]), timeout=5)
        redis_pid = self.clone / "data" / "redis" / "redis.pid"
        for pid in self.pids[-1:] + ([int(redis_pid.read_text())] if redis_pid.exists() else []):
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _in_new_shell(clone: Path, code: str) -> str:
    """What ``code`` prints in a shell that only sourced data/demo.env."""
    script = f"set -a; . data/demo.env; set +a; python -c {code!r}"
    done = subprocess.run(["bash", "-c", script], cwd=clone, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(clone)}, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.slow
def test_the_demo_serves_a_true_health_check_leaves_its_settings_and_stops_on_ctrl_c(
        clone, tmp_path):
    # Given a fresh copy of the repository and a small export
    env = _env(tmp_path)
    first = Demo(clone, env, tmp_path / "first.log")
    try:
        # When the demo runs, its output piped into tee
        first.wait_serving()
        # Then its health check is true: the stand-in answers for Totara
        health = wait_for(first.health, timeout=60, what="a true health check",
                          interval=0.5)
        assert health["errors"] == []
        # And a new shell that sources data/demo.env has its settings, and the venv's Python
        assert _in_new_shell(clone, "from runtime.config import from_env; "
                             "s = from_env(); print(s.totara_url, s.export_dir)") == \
            f"http://127.0.0.1:{first.port + 1} {env['ML_EXPORT_DIR']}"
        # And Ctrl-C stops the API, the worker, the stand-in and the embedded Redis
        first.ctrl_c()
    finally:
        first.kill_left()
    log = (tmp_path / "first.log").read_text()
    assert "Ctrl-C stops everything: the API, the worker, the Totara stand-in and the " \
           "embedded Redis" in log
    assert "set -a; . data/demo.env; set +a" in log
    # When it runs again, it serves what the first run trained instead of training again
    second = Demo(clone, env, tmp_path / "second.log")
    try:
        second.wait_serving()
        second.ctrl_c()
    finally:
        second.kill_left()
    table = [line.split()[:2] for line in (tmp_path / "second.log").read_text().splitlines()
             if line.split()[:1] in (["0"], ["1"])]
    assert table == [["0", "skipped"], ["1", "skipped"]]
