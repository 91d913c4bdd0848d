"""The commands as a user runs them, on the embedded Redis the README's quick start uses."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from published import keys
from runtime.redisconn import SOCKET_NAME


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "recommender", *args], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def cli_env(base_env) -> dict[str, str]:
    env = {**os.environ, **base_env}
    for name in ("ML_REDIS_URL", "ML_BROKER_URL", "ML_EXPORT_DIR"):
        env.pop(name, None)
    yield env
    socket = Path(base_env["ML_EMBEDDED_DIR"]).resolve() / SOCKET_NAME
    if socket.exists():
        try:
            redis.Redis(unix_socket_path=str(socket)).shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # shutting down closes the connection


def test_demo_data_train_and_restore_on_the_embedded_redis(cli_env, tmp_path):
    export_dir = tmp_path / "export"
    made = _run(cli_env, "demo-data", str(export_dir), "--tenants", "2", "--users", "120",
                "--items", "50", "--interactions", "2000")
    assert made.returncode == 0, made.stderr
    # When every tenant is trained, without Totara settings (the export is local)
    env = {k: v for k, v in cli_env.items() if not k.startswith("ML_TOTARA")}
    trained = _run(env, "train", "--export-dir", str(export_dir))
    assert trained.returncode == 0, trained.stderr
    # Then the table lists both tenants as published, and the progress shows the stages
    table = trained.stdout.splitlines()
    assert table[0].split()[:2] == ["tenant", "status"]
    assert [line.split()[:2] for line in table[1:3]] == [["0", "published"], ["1", "published"]]
    for stage in ("load", "features", "fit", "publish"):
        assert f"tenant 1: {stage}" in trained.stderr
    socket = Path(cli_env["ML_EMBEDDED_DIR"]).resolve() / SOCKET_NAME
    client = redis.Redis(unix_socket_path=str(socket))
    assert client.smembers(keys.TENANTS) == {b"0", b"1"}
    # And an emptied Redis is refilled from the saved models
    client.flushall()
    restored = _run(env, "restore")
    assert restored.returncode == 0, restored.stderr
    assert client.exists(keys.current("0"), keys.current("1")) == 2


def test_train_exits_non_zero_when_a_tenant_fails_and_still_trains_the_others(cli_env,
                                                                               tmp_path):
    export_dir = tmp_path / "export"
    assert _run(cli_env, "demo-data", str(export_dir), "--tenants", "2", "--users", "60",
                "--items", "30", "--interactions", "600").returncode == 0
    broken = export_dir / "item_data_0.csv"
    broken.write_bytes(broken.read_bytes().replace(b"container_course", b"container_cours", 2))
    trained = _run(cli_env, "train", "--export-dir", str(export_dir))
    assert trained.returncode == 1
    assert "item_data_0.csv line" in trained.stdout
    assert [line.split()[:2] for line in trained.stdout.splitlines()[1:3]] == [
        ["0", "failed"], ["1", "published"]]


def test_restore_without_saved_models_says_so(cli_env):
    done = _run(cli_env, "restore")
    assert done.returncode == 1
    assert "no saved models" in done.stderr


@pytest.fixture
def keep_log_levels():
    """The command sets the training side's loggers to WARNING; later tests expect their INFO."""
    loggers = [logging.getLogger(name) for name in ("", "recommender", "published", "runtime")]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.mark.usefixtures("keep_log_levels")
def test_train_leaves_alone_a_tenant_that_a_worker_is_training(base_env, tmp_path, fake_redis,
                                                             monkeypatch, capsys):
    from published.locks import TenantLock
    from recommender.__main__ import main
    from recommender.offline import demo
    from runtime import redisconn

    export_dir = tmp_path / "export"
    demo.write_demo_export(export_dir, tenants=2, users=60, items=30, interactions=600)
    for name, value in base_env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(redisconn, "connect", lambda settings, **options: fake_redis)
    # Given a worker holding tenant 0's training lock
    worker = TenantLock(fake_redis, "0", owner="host-a:123")
    assert worker.acquire()
    # When tenant 0 and 1 are trained by hand
    status = main(["train", "--export-dir", str(export_dir)])
    # Then tenant 0 is left to the worker, tenant 1 is trained, and the exit status says so
    out = capsys.readouterr().out
    assert status == 1
    assert [line.split()[:2] for line in out.splitlines()[1:3]] == [
        ["0", "locked"], ["1", "published"]]
    assert "being trained by host-a:123" in out
    assert fake_redis.get(keys.current("0")) is None
    # And the command released the lock it took for tenant 1
    assert fake_redis.get(keys.lock("1")) is None


def test_the_embedded_redis_snapshots_its_data_so_a_restart_keeps_it(base_env, tmp_path):
    # Given the embedded Redis, started as every process of the demo starts it
    from runtime.redisconn import ensure_embedded

    directory = Path(base_env["ML_EMBEDDED_DIR"])
    client = redis.Redis(unix_socket_path=str(ensure_embedded(directory)))
    try:
        # Then it is configured to write snapshots (one "300 1" argument used to be ignored)
        assert client.config_get("save") == {"save": "300 1"}
        # And a clean shutdown leaves a snapshot that the next start loads
        client.set("kept", b"1")
    finally:
        try:
            client.shutdown()  # saves, as with save points configured
        except redis.ConnectionError:
            pass
    assert (directory.resolve() / "dump.rdb").exists()
    client = redis.Redis(unix_socket_path=str(ensure_embedded(directory)))
    try:
        assert client.get("kept") == b"1"
    finally:
        try:
            client.shutdown(nosave=True)
        except redis.ConnectionError:
            pass


def _shutdown(socket: Path, **options: bool) -> None:
    try:
        redis.Redis(unix_socket_path=str(socket)).shutdown(**options)
    except redis.ConnectionError:
        pass  # shutting down closes the connection


def test_a_restarted_embedded_redis_serves_the_lists_and_the_next_train_reuses_them(cli_env,
                                                                                  tmp_path):
    from runtime.redisconn import ensure_embedded

    # Given the demo's flow on the embedded Redis: an export, trained and published
    export_dir = tmp_path / "export"
    assert _run(cli_env, "demo-data", str(export_dir), "--tenants", "2", "--users", "60",
                "--items", "30", "--interactions", "600").returncode == 0
    assert _run(cli_env, "train", "--export-dir", str(export_dir)).returncode == 0
    directory = Path(cli_env["ML_EMBEDDED_DIR"])
    socket = directory.resolve() / SOCKET_NAME
    client = redis.Redis(unix_socket_path=str(socket))
    published = {t: client.get(keys.current(t)) for t in ("0", "1")}
    lists = {t: client.get(keys.popular(t, published[t].decode())) for t in ("0", "1")}
    # When the embedded Redis stops (as the demo stops it) and the next process starts it again
    _shutdown(socket)
    assert not socket.exists()
    client = redis.Redis(unix_socket_path=str(ensure_embedded(directory)))
    # Then the same versions and lists are served
    assert {t: client.get(keys.current(t)) for t in ("0", "1")} == published
    assert {t: client.get(keys.popular(t, published[t].decode())) for t in ("0", "1")} == lists
    assert all(lists.values())
    # And training the same export again reuses them instead of fitting afresh
    again = _run(cli_env, "train", "--export-dir", str(export_dir))
    assert again.returncode == 0, again.stderr
    assert [line.split()[:2] for line in again.stdout.splitlines()[1:3]] == [
        ["0", "skipped"], ["1", "skipped"]]
    assert ": fit" not in again.stderr
