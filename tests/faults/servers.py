"""Private servers the fault tests may kill: Redis, a RabbitMQ node, gunicorn, worker processes.

Everything listens on 127.0.0.1 on ports picked free at start, so the shared Redis and RabbitMQ
are never touched. Each server is a child process (or process group) that the test kills with
SIGKILL, pauses with SIGSTOP, or restarts on the same port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import redis
import requests

from tests.waiting import wait_for  # noqa: F401  (re-exported for the fault tests)

ROOT = Path(__file__).resolve().parents[2]
RABBITMQ_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")  # runs as the caller, unlike
# /usr/sbin/rabbitmq-server, which switches to the rabbitmq user (it could not write our folder)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def _stop(process: subprocess.Popen | None, group: bool = False, sig: int = signal.SIGKILL,
          timeout: float = 10) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL) if group else process.kill()
        process.wait(timeout)
    except ProcessLookupError:
        pass


class RedisServer:
    """``redis-server`` without persistence: after ``kill`` and ``start`` it comes back empty."""

    def __init__(self, directory: Path, port: int | None = None,
                 extra: list[str] | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.extra = extra or []
        self.process: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, **options: Any) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5, **options)

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        log = open(self.directory / "redis.log", "a")  # noqa: SIM115 - the process keeps it
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.directory),
             *self.extra], stdout=log, stderr=subprocess.STDOUT)
        log.close()

        def answers() -> bool:
            try:
                return bool(self.client(socket_connect_timeout=0.2).ping())
            except redis.RedisError:
                return False

        wait_for(answers, 10, f"redis-server on port {self.port}")
        return self

    def kill(self) -> None:
        """SIGKILL: whatever it held is gone, connections are reset."""
        self.resume()
        _stop(self.process)

    def pause(self) -> None:
        """SIGSTOP: connections stay open and nothing answers (a hung server)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)


class RabbitNode:
    """A private RabbitMQ node (own node name, ports, database) that can be killed and restarted.

    Starting takes about 10 s, a restart on the same database about 5 s; messages that were
    published with confirms survive a SIGKILL of the node.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.dist_port = free_port()
        self.name = f"mlfaults_{uuid.uuid4().hex[:8]}@localhost"
        self.process: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\nloopback_users = none\n")
        (directory / "enabled_plugins").write_text("[].\n")  # no management plugin: faster
        (directory / "rabbitmq-env.conf").write_text("")

    @staticmethod
    def available() -> bool:
        return RABBITMQ_SCRIPT.exists()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def start(self, timeout: float = 90) -> RabbitNode:
        d = self.directory
        env = {**os.environ, "HOME": str(d), "RABBITMQ_NODENAME": self.name,
               "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.port),
               "RABBITMQ_DIST_PORT": str(self.dist_port),
               "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
               "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
               "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
               "RABBITMQ_MNESIA_BASE": str(d / "mnesia"), "RABBITMQ_LOG_BASE": str(d / "log"),
               "RABBITMQ_PID_FILE": str(d / "rabbit.pid")}
        log = open(d / "node.log", "a")  # noqa: SIM115 - the process keeps it
        # Its own process group: the node is a shell script, beam and helpers; all must die.
        self.process = subprocess.Popen([str(RABBITMQ_SCRIPT)], env=env, stdout=log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        try:
            wait_for(lambda: self.process.poll() is not None or self._accepts(), timeout,
                     "private RabbitMQ node", interval=0.25)
        except AssertionError:
            self.kill()
            raise
        if self.process.poll() is not None:
            raise RuntimeError("RabbitMQ node exited:\n" + (d / "node.log").read_text()[-3000:])
        return self

    def _accepts(self) -> bool:
        if not port_open(self.port):
            return False
        from kombu import Connection

        try:
            with Connection(self.url, connect_timeout=1) as conn:
                conn.ensure_connection(max_retries=0, timeout=1)
            return True
        except Exception:  # still booting
            return False

    def kill(self) -> None:
        """SIGKILL of the whole node: no goodbye to clients, as in a crash or power loss."""
        _stop(self.process, group=True)


class Api:
    """The API under gunicorn with deploy/gunicorn.conf.py."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 2) -> None:
        self.port = free_port()
        self.env = {**env, "ML_BIND": f"127.0.0.1:{self.port}", "WEB_CONCURRENCY": str(workers)}
        self.log = log
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Api:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        out = open(self.log, "a")  # noqa: SIM115 - the process keeps it
        self.process = subprocess.Popen(
            [str(gunicorn), "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
             "api.app:create_app()"], cwd=ROOT, env=self.env, stdout=out,
            stderr=subprocess.STDOUT)
        out.close()

        def serving() -> bool:
            if self.process.poll() is not None:
                raise AssertionError("gunicorn exited:\n" + self.log.read_text()[-3000:])
            try:
                return requests.get(self.url + "/livez", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_for(serving, 20, "gunicorn")
        return self

    def stop(self) -> None:
        _stop(self.process, sig=signal.SIGTERM, timeout=15)


def start_worker(env: dict[str, str], log: Path) -> subprocess.Popen:
    """A worker process (tests/faults/fault_worker.py: the real pipeline, fast settings)."""
    out = open(log, "a")  # noqa: SIM115 - the process keeps it
    process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fault_worker.py"))],
                               cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    return process


def stop_process(process: subprocess.Popen, sig: int = signal.SIGTERM,
                 timeout: float = 15) -> int | None:
    _stop(process, sig=sig, timeout=timeout)
    return process.returncode


class Tmpfs:
    """A small tmpfs mounted on ``path`` (root only), to make a disk full or read-only for real."""

    def __init__(self, path: Path, size_kb: int) -> None:
        self.path = path
        self.size_kb = size_kb
        self.mounted = False

    def mount(self) -> Tmpfs:
        self.path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_kb}k", "tmpfs",
                               str(self.path)], capture_output=True, text=True)
        if done.returncode != 0:
            raise PermissionError(f"cannot mount a tmpfs: {done.stderr.strip()}")
        self.mounted = True
        return self

    def fill(self) -> None:
        """Write until the file system refuses: ENOSPC for whatever comes next."""
        fd = os.open(self.path / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:  # ENOSPC: full
            pass
        finally:
            os.close(fd)

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False)
            self.mounted = False
