"""The demo's launcher: Ctrl-C stops every process it started, and the embedded Redis, even when
its output goes into a pipe whose reader has gone (``deploy/demo.sh | tee log``)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from runtime.launcher import Output, read_procfile
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent
# What deploy/demo.sh ends with (it used to end with `honcho start -f Procfile`).
LAUNCH = "exec python -m runtime.launcher"


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# Processes as the demo's behave, fast: one talks all the time (its lines hit the broken pipe),
# one ignores SIGTERM (killed after the grace), one starts a child of its own (stopped with it).
STUB_PROCFILE = """\
chatty: sh -c 'while :; do echo chat; sleep 0.02; done'
stubborn: sh -c 'trap "" TERM; sleep 601'
parent: sh -c 'sleep 600 & wait'
"""


def _command(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.NoSuchProcess:  # chatty's `sleep 0.02` come and go
        return ""


def _stubs_started(pid: int) -> list[int] | None:
    """The pids under ``pid`` once each stub (and the grandchild) runs, else None."""
    processes = psutil.Process(pid).children(recursive=True)
    commands = " ".join(_command(p) for p in processes)
    started = all(mark in commands for mark in ("echo chat", "sleep 601", "sleep 600"))
    return [p.pid for p in processes] if started else None


def _stub_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ML_")}
    # An external Redis that is not there: the launcher must not stop (or start) an embedded one.
    env.update(ML_REDIS_URL="redis://127.0.0.1:9/0", ML_EMBEDDED_DIR=str(tmp_path / "redis"),
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    return env


@pytest.mark.parametrize("reader", ["tee {log}", "head -n 1"], ids=["tee", "reader-gone"])
def test_ctrl_c_stops_every_process_when_the_output_reader_dies_or_has_gone(tmp_path, reader):
    # Given the launcher's output in a pipe: a reader that dies with Ctrl-C (`| tee log`), or
    # one that has already left (`| head -n 1`)
    procfile, log = tmp_path / "Procfile", tmp_path / "log"
    procfile.write_text(STUB_PROCFILE)
    command = f"{LAUNCH} -f {procfile} --grace 1 | {reader.format(log=log)}"
    shell = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=_stub_env(tmp_path),
                             start_new_session=True, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    pids: list[int] = []
    try:
        pids = wait_for(lambda: _stubs_started(shell.pid), timeout=20,
                        what="every stub process started")
        # When Ctrl-C reaches the foreground process group
        os.killpg(shell.pid, signal.SIGINT)
        # Then the pipeline ends and every process it started is gone within seconds
        shell.wait(timeout=10)
        wait_for(lambda: not any(_alive(pid) for pid in pids), timeout=5,
                 what="every process gone")
        if reader.startswith("tee"):
            assert "Ctrl-C stops chatty, stubborn and parent" in log.read_text()
    finally:
        _kill_left(shell, pids)


def _kill_left(shell: subprocess.Popen, pids: list[int]) -> None:
    """Whatever a failed run leaves behind, by pid: nothing else on the machine is touched."""
    if shell.poll() is None:
        os.killpg(shell.pid, signal.SIGKILL)
        shell.wait()
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_output_drops_lines_once_the_reader_has_gone():
    read, write = os.pipe()
    os.close(read)
    out = Output(os.fdopen(write, "w"), 6)
    out.line("web", "nobody reads this")  # no BrokenPipeError
    assert out.broken
    buffer = io.StringIO()
    Output(buffer, 6).line("worker", "up")
    assert buffer.getvalue().endswith(" worker | up\n")


def test_a_procfile_line_without_a_command_is_refused_with_its_line_number(tmp_path):
    procfile = tmp_path / "Procfile"
    procfile.write_text("# demo\nweb: gunicorn app\n\nworker\n")
    with pytest.raises(ValueError, match="line 4"):
        read_procfile(procfile)
    procfile.write_text("# demo\nweb: gunicorn app\n")
    assert [(e.name, e.command) for e in read_procfile(procfile)] == [("web", "gunicorn app")]


def test_stop_embedded_says_false_when_nothing_runs(tmp_path):
    from runtime.redisconn import stop_embedded

    assert stop_embedded(tmp_path) is False


def test_stop_embedded_stops_a_server_that_cannot_save_its_snapshot(tmp_path):
    import shutil

    import redis

    from runtime.redisconn import ensure_embedded, stop_embedded

    # Given an embedded Redis whose snapshot folder has gone (it refuses SHUTDOWN SAVE then)
    directory, snapshots = tmp_path / "redis", tmp_path / "snapshots"
    snapshots.mkdir()
    client = redis.Redis(unix_socket_path=str(ensure_embedded(directory)))
    pid = int((directory / "redis.pid").read_text())
    try:
        client.config_set("dir", str(snapshots))
        shutil.rmtree(snapshots)
        client.set("k", "v")
        # When it is stopped, then it stops all the same
        assert stop_embedded(directory) is True
        wait_for(lambda: not _alive(pid), timeout=5, what="the embedded Redis gone")
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_procfile_command_may_start_with_variable_assignments_and_read_its_instance(tmp_path):
    # Given the repository's Procfile style: an assignment before the program, read from the
    # process name honcho gives (worker.1)
    procfile = tmp_path / "Procfile"
    procfile.write_text("worker: N=${HONCHO_PROCESS_NAME##*.} sh -c 'echo instance $N'\n")
    # When the launcher runs it
    done = subprocess.run([sys.executable, "-m", "runtime.launcher", "-f", str(procfile),
                           "--grace", "1"], cwd=ROOT, env=_stub_env(tmp_path),
                          capture_output=True, text=True, timeout=30)
    # Then the command ran with its variable (before: "exec: N=1: not found")
    assert "instance 1" in done.stdout, done.stdout + done.stderr
