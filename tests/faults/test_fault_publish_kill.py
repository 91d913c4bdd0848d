"""A worker process killed with SIGKILL half-way through publishing a version.

Readers (the API under gunicorn, polled all along) only ever see a whole version: the one
published before, then the one the next run publishes. The killed run's partial version stays
invisible and the next run, on another worker, deletes it before publishing.
"""

from __future__ import annotations

import signal
import threading

import pytest
import requests
from conftest import KEY
from kombu import Connection
from servers import Api, start_worker, wait_for

from consumer import events
from consumer.sender import send
from consumer.topology import Topology
from published import keys, versions
from recommender import pipeline
from recommender.ingest import export
from recommender.model.params import TrainParams
from runtime import config
from runtime.signing import signed_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = TrainParams(components=8, max_epochs=4, patience=1, validation_users=200)


class Poller:
    """Asks the API for the same users' lists until stopped; remembers every distinct answer."""

    def __init__(self, url: str, users: list[int]) -> None:
        self.url = url
        self.users = users
        self.answers: dict[int, list[bytes]] = {u: [] for u in users}
        self.requests = 0
        self.problems: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for user in self.users:
                params = {"totara_user_id": user, "item_type": "container_course", "tenant": 0,
                          "n_items": 10}
                try:
                    answer = requests.get(self.url + "/user-items", params=params,
                                          headers=signed_headers(KEY), timeout=(1, 2))
                except requests.RequestException as exc:
                    self.problems.append(f"{type(exc).__name__}: {exc}")
                    continue
                self.requests += 1
                if answer.status_code != 200 or b'"success": true' not in answer.content:
                    self.problems.append(f"{answer.status_code} {answer.text[:200]}")
                seen = self.answers[user]
                if not seen or seen[-1] != answer.content:
                    seen.append(answer.content)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_sigkill_during_publish_never_shows_a_partial_version_and_the_next_run_removes_it(
        fault_env, private_redis, shared_broker, processes, tmp_path):
    url_broker, prefix = shared_broker
    env = {**fault_env, "ML_REDIS_URL": private_redis.url, "ML_BROKER_URL": url_broker,
           "ML_BROKER_PREFIX": prefix}
    settings = config.from_env(env)
    client = private_redis.client()
    # Given tenant 0 published and served
    first = pipeline.train_tenant(settings, client, "0", params=FAST)
    users = [int(u) for u in export.load_tenant(settings.export_dir, "0").users.ids[:5]]
    api = Api(env, tmp_path / "api.log").start()
    processes.append(api.process)
    # And a worker that pauses after every chunk it writes while publishing
    victim = start_worker({**env, "FAULT_PUBLISH_DELAY": "1"}, tmp_path / "victim.log")
    processes.append(victim)
    with Poller(api.url, users) as poller:
        wait_for(lambda: poller.requests > 10, 10, "the API answering")
        with Connection(url_broker) as connection:
            send(connection, Topology(prefix), events.make_event(events.TRAIN, tenant="0",
                                                                 force=True))
        # When the worker is killed after its first chunk of the new version
        wait_for(lambda: client.lrange("fault:publishing", 0, -1), 30, "publishing started")
        victim.send_signal(signal.SIGKILL)
        victim.wait(5)
        partial = client.lrange("fault:publishing", 0, 0)[0].decode().split(":", 1)[1]
        # Then the partial version is registered, has keys, no meta, and is not current
        assert versions.current_version(client, "0") == first.version
        assert client.zscore(keys.versions("0"), partial) is not None
        assert client.exists(keys.model("0", partial)) and not client.exists(
            keys.meta("0", partial))
        # When another worker takes the redelivered event (after the dead one's lock expired)
        processes.append(start_worker(env, tmp_path / "successor.log"))
        wait_for(lambda: versions.current_version(client, "0") not in (first.version, None), 60,
                 "the successor published")
        wait_for(lambda: poller.requests > 40, 10, "more answers")
    # Then the partial version is gone, every key of it
    assert client.zscore(keys.versions("0"), partial) is None
    assert client.exists(*keys.version_keys("0", partial)) == 0
    # And the API never answered anything but a whole version's lists
    assert poller.problems == []
    for user, seen in poller.answers.items():
        assert 1 <= len(seen) <= 2, (user, seen)  # the old lists, then (maybe) the new ones
    assert "deleted old version " + partial in (tmp_path / "successor.log").read_text()
