"""Totara misbehaving during a download, under a real worker process and the API (gunicorn).

A fake Totara site (tests/fake_totara.py) serves the export; each case breaks it one way: 202
forever, 404, 500, a hang past the download timeout, a connection cut mid-file, and files that
arrive whole but are damaged (cut mid-line, not UTF-8, a column missing, interactions naming
users or items the other files do not have). Every time the tenant's training fails cleanly with a
message naming the file (and the line, for data), the published lists stay and are served, and
the failure shows in train_summary.log, /health-check and /metrics.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from conftest import KEY
from fake_totara import FakeTotara  # tests/, on the path through tests/conftest.py
from kombu import Connection
from servers import Api, RedisServer, start_worker, stop_process, wait_for

from consumer import events
from consumer.sender import send
from consumer.topology import Topology
from published import keys, summary
from runtime.signing import signed_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INTERACTIONS, USERS, ITEMS = "user_interactions_0.csv", "user_data_0.csv", "item_data_0.csv"


@dataclass
class Site:
    served: Path  # what the fake Totara serves
    good: Path  # the pristine export
    totara: FakeTotara
    redis: RedisServer
    api: Api
    worker: subprocess.Popen
    topology: Topology
    logs_dir: Path
    queries: list[tuple[str, dict]]
    before: list[bytes]
    worker_log: Path

    def answers(self) -> list[bytes]:
        return [requests.get(self.api.url + path, params=params, headers=signed_headers(KEY),
                             timeout=(1, 2)).content for path, params in self.queries]

    def train(self) -> None:
        with Connection(self.redis.url) as connection:
            send(connection, self.topology, events.make_event(events.TRAIN, tenant="0"))

    def reset(self) -> None:
        self.totara.export_mode = "ok"
        for name in (INTERACTIONS, USERS, ITEMS):
            shutil.copyfile(self.good / name, self.served / name)


@pytest.fixture(scope="module")
def site(tmp_path_factory, fault_export) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("totara-faults")
    served = root / "served"
    served.mkdir()
    for name in ("tenants.csv", INTERACTIONS, USERS, ITEMS):
        shutil.copyfile(fault_export / name, served / name)
    redis_server = RedisServer(root / "redis").start()
    totara = FakeTotara(KEY, served).start()
    totara.hang_seconds = 3
    env = {"PATH": "/usr/bin:/bin", "ML_TOTARA_URL": totara.url, "ML_TOTARA_KEY": KEY,
           "ML_MODELS_DIR": str(root / "models"), "ML_LOGS_DIR": str(root / "logs"),
           "ML_REDIS_URL": redis_server.url, "ML_NUM_THREADS": "1", "ML_TOP_K": "20",
           "ML_METRICS_PORT": "0", "ML_BROKER_PREFIX": "faults_totara",
           # The broker is the private Redis (kombu's Redis transport, as in the one-host set-up).
           "ML_DOWNLOAD_RETRIES": "1", "ML_DOWNLOAD_RETRY_DELAY": "0.2",
           "ML_DOWNLOAD_TIMEOUT": "1", "FAULT_MAX_ATTEMPTS": "2"}
    api = Api(env, root / "api.log").start()
    worker = start_worker(env, root / "worker.log")
    site = Site(served, fault_export, totara, redis_server, api, worker,
                Topology("faults_totara", amqp=False), root / "logs", [], [], root / "worker.log")
    try:
        # Given tenant 0 trained from a good export and served
        site.train()
        client = redis_server.client()
        wait_for(lambda: client.hget(keys.last_run("0"), "status") == b"published", 60,
                 "the first training")
        site.queries = [
            ("/user-items", {"totara_user_id": 2, "item_type": "container_course", "tenant": 0,
                             "n_items": 10}),
            ("/similar-items", {"totara_item_id": _first_item(served), "tenant": 0,
                                "n_items": 5})]
        wait_for(lambda: all(b'"success": true' in a for a in site.answers()), 5, "served")
        site.before = site.answers()
        yield site
    finally:
        stop_process(worker)
        api.stop()
        totara.stop()
        redis_server.kill()
        for log in ("worker.log", "api.log"):
            print(f"==== {log}\n{(root / log).read_text()[-8000:]}")


def _first_item(folder: Path) -> str:
    return (folder / ITEMS).read_text().splitlines()[1].split(",", 1)[0]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


# Each case: (how to break Totara or its files, what the failure message must contain).
Breaker = Callable[[Site], None]


def _mode(mode: str) -> Breaker:
    def apply(site: Site) -> None:
        site.totara.export_mode = mode
    return apply


def _cut_mid_line(site: Site) -> None:
    data = (site.good / INTERACTIONS).read_bytes()
    (site.served / INTERACTIONS).write_bytes(data[:-10])


def _latin1(site: Site) -> None:
    lines = (site.good / USERS).read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b",", b",\xe9", 1)  # an e-acute in ISO 8859-1
    (site.served / USERS).write_bytes(b"\n".join(lines))


def _no_document_column(site: Site) -> None:
    lines = _lines(site.good / ITEMS)
    lines[0] = lines[0].removesuffix(",document")
    (site.served / ITEMS).write_text("\n".join(lines) + "\n")


def _append_interaction(user: str | None = None, item: str | None = None) -> Breaker:
    def apply(site: Site) -> None:
        lines = _lines(site.good / INTERACTIONS)
        first_user, first_item = lines[1].split(",")[:2]
        lines.append(f"{user or first_user},{item or first_item},1,1700000000")
        (site.served / INTERACTIONS).write_text("\n".join(lines) + "\n")
    return apply


def _line_count(name: str) -> Callable[[Site], int]:
    return lambda site: len(_lines(site.good / name))


CASES = {
    "202-forever": (_mode("accepted"), [INTERACTIONS, "still not ready (202)"], "dead"),
    "404": (_mode("not_found"), [INTERACTIONS, "Totara answered 404"], "dead"),
    "500": (_mode("server_error"), [INTERACTIONS, "Totara answered HTTP 500"], "dead"),
    "hang": (_mode("hang"), [INTERACTIONS, "did not answer within 1 s"], "dead"),
    "connection-cut": (_mode("truncated"), [INTERACTIONS, "connection broke during the download"],
                       "dead"),
    "csv-cut-mid-line": (_cut_mid_line, [INTERACTIONS, "line {interactions}:", "truncated"],
                         "acked"),
    "wrong-encoding": (_latin1, [USERS, "line 2:", "not UTF-8"], "acked"),
    "missing-column": (_no_document_column, [ITEMS, "line 1:", "missing column 'document'"],
                       "acked"),
    "unknown-user": (_append_interaction(user="999999"),
                     [INTERACTIONS, "line {interactions_plus}:", "999999 is not in", USERS],
                     "acked"),
    "unknown-item": (_append_interaction(item="container_course999999"),
                     [INTERACTIONS, "line {interactions_plus}:", "container_course999999 is "
                      "not in", ITEMS], "acked"),
}


def _dead_count(site: Site) -> int:
    # kombu's Redis transport keeps a queue as a list of that name (absent while empty).
    return site.redis.client().llen(site.topology.dead_queue.name)


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_export_fails_the_run_cleanly_and_the_old_lists_stay(site, case):
    breaker, expected, settled = CASES[case]
    lines = len(_lines(site.good / INTERACTIONS))
    expected = [e.format(interactions=lines, interactions_plus=lines + 1) for e in expected]
    client = site.redis.client()
    dead_before = _dead_count(site)
    started = time.time()
    try:
        # Given Totara or its export is broken this way
        breaker(site)
        # When the tenant's training runs
        site.train()

        def failed_run() -> bool:
            run = client.hgetall(keys.last_run("0"))
            return run.get(b"status") == b"failed" and float(run[b"at"]) >= started

        wait_for(failed_run, 30, "a failed run recorded")
        if settled == "dead":  # infrastructure trouble: retried, then dead-lettered
            wait_for(lambda: _dead_count(site) == dead_before + 1, 30, "dead-lettered")
        # Then the run's message names the file (and the line, for damaged data)
        message = client.hget(keys.last_run("0"), "message").decode()
        for text in expected:
            assert text in message, message
        # And train_summary.log has it
        assert all(text in summary.read(site.logs_dir)[-1]["MSG"] for text in expected[:2])
        # And the lists published before are still served, byte for byte
        assert site.answers() == site.before
        # And /health-check reports it (still HTTP 200) and /metrics counts the failed run
        health = requests.get(site.api.url + "/health-check", headers=signed_headers(KEY),
                              timeout=(1, 2)).json()
        problem = [e for e in health["errors"] if "last training run of tenant 0 failed" in e]
        assert problem and expected[0] in problem[0], health["errors"]
        assert health["totara"]["tenant_0_last_run"] == "failed"

        def metric_says_failed() -> bool:
            text = requests.get(site.api.url + "/metrics", timeout=2).text
            return 'totara_ml_tenant_last_run_ok{tenant="0"} 0.0' in text

        wait_for(metric_says_failed, 10, "the failure in /metrics")
    finally:
        site.reset()
    assert site.worker.poll() is None


def test_the_key_and_the_signatures_never_reach_the_logs(site):
    # Runs after the cases above (file order): every download was signed, many were refused.
    signatures = {h["X-Totara-Ml-Key"] for h in site.totara.headers_seen
                  if h.get("X-Totara-Ml-Key")}
    assert len(signatures) > 5
    logs = [site.worker_log.read_text(), site.api.log.read_text(),
            (site.logs_dir / "train_summary.log").read_text()]
    for text in logs:
        assert KEY not in text
        assert not any(signature in text for signature in signatures)
