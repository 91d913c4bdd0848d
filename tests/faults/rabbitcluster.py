"""Three private RabbitMQ nodes on loopback, joined in one cluster, for the cluster fault test.

Each node is a ``RabbitNode`` (its own node name, AMQP and distribution ports, database under its
own folder). They share an Erlang cookie, written to each node's ``HOME``. The first node boots
alone; the others boot together afterwards with classic-config peer discovery naming the first,
so each joins it on its first boot (no ``rabbitmqctl join_cluster`` round trips, no race
between blank nodes forming clusters of their own). ``stop`` kills every node by its process
group and removes the folders, whatever state the start was left in.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from servers import RabbitNode, wait_for

RABBITMQCTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")


class RabbitCluster:
    def __init__(self, directory: Path, size: int = 3) -> None:
        self.directory = directory
        self.formed_seconds = 0.0  # set by the test: how long the cluster took to form
        self.nodes = [RabbitNode(directory / f"node{i}") for i in range(size)]
        cookie = secrets.token_hex(16).upper()
        seed = self.nodes[0].name
        for number, node in enumerate(self.nodes):
            path = node.directory / ".erlang.cookie"
            path.write_text(cookie)
            path.chmod(0o400)  # Erlang refuses a cookie others can read
            if number:
                with open(node.directory / "rabbitmq.conf", "a") as conf:
                    conf.write("cluster_formation.peer_discovery_backend = classic_config\n"
                               f"cluster_formation.classic_config.nodes.1 = {seed}\n")

    @staticmethod
    def available() -> bool:
        return RabbitNode.available() and RABBITMQCTL.exists()

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start(self, timeout: float = 60) -> RabbitCluster:
        try:
            self.nodes[0].start(timeout)
            with ThreadPoolExecutor(len(self.nodes) - 1) as pool:
                for started in [pool.submit(node.start, timeout) for node in self.nodes[1:]]:
                    started.result()
            wait_for(lambda: len(self.running_nodes()) == len(self.nodes), timeout,
                     "every node in one cluster", interval=1)
        except BaseException:
            self.stop()
            raise
        return self

    def running_nodes(self, via: int = 0) -> list[str]:
        """The cluster's running nodes as node ``via`` sees them ([] when it does not answer)."""
        node = self.nodes[via]
        env = {**os.environ, "HOME": str(node.directory),
               "RABBITMQ_CONF_ENV_FILE": str(node.directory / "rabbitmq-env.conf")}
        try:
            done = subprocess.run([str(RABBITMQCTL), "-n", node.name, "cluster_status",
                                   "--formatter", "json"], env=env, capture_output=True,
                                  text=True, timeout=30)
            return list(json.loads(done.stdout).get("running_nodes", []))
        except (subprocess.TimeoutExpired, ValueError, AttributeError):
            return []

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextmanager
def hard_timeout(seconds: float) -> Iterator[None]:
    """Interrupt the block (main thread only) once ``seconds`` have passed, wherever it waits."""
    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after the hard limit of {seconds:g}s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
