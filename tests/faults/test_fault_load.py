"""A steady request rate on the API (gunicorn) while new versions are published and old ones
deleted: zero 5xx, zero failure envelopes; the latency percentiles are printed (in the
"fault suite measurements" section at the end of pytest's output)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import requests
from conftest import KEY
from servers import Api

from published import versions
from recommender import pipeline
from recommender.ingest import export
from recommender.model.params import TrainParams
from recommender.publish import modelfile, restore
from runtime import config
from runtime.signing import signed_headers

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FAST = TrainParams(components=8, max_epochs=4, patience=1, validation_users=200)
CLIENTS = 4
RATE_PER_CLIENT = 20  # requests per second: 80 in all, well under what 2 workers serve
SECONDS = 8
PUBLISHES = 5


def _client(url: str, users: list[int], latencies: list[float], problems: list[str],
            stop_at: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    period = 1 / RATE_PER_CLIENT
    next_at = time.monotonic()
    while next_at < stop_at:
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += period
        params = {"totara_user_id": int(rng.choice(users)), "item_type": "container_course",
                  "tenant": 0, "n_items": 10}
        started = time.monotonic()
        try:
            # A new connection per request, as Totara's curl does.
            answer = requests.get(url + "/user-items", params=params, timeout=(1, 2),
                                  headers={**signed_headers(KEY), "Connection": "close"})
        except requests.RequestException as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
            continue
        latencies.append(time.monotonic() - started)
        if answer.status_code != 200 or not answer.content.startswith(b'{"success": true'):
            problems.append(f"{answer.status_code} {answer.text[:200]}")


def _republish(settings: config.Settings, client) -> str:
    saved = modelfile.current_version(settings.models_dir, "0")
    model, meta = modelfile.load(settings.models_dir, "0", saved)
    version = versions.new_version()
    restore.publish_saved(settings, client, "0", saved, version, model, meta)
    return version


def test_publishing_under_steady_load_gives_no_error_and_no_failure_envelope(
        fault_env, private_redis, processes, tmp_path, report):
    # A short grace period, so replaced versions are also deleted while requests run; it must
    # stay above the API's 1 s pointer cache.
    env = {**fault_env, "ML_REDIS_URL": private_redis.url, "ML_PUBLISH_GRACE": "2"}
    settings = config.from_env(env)
    client = private_redis.client()
    assert pipeline.train_tenant(settings, client, "0", params=FAST).status == "published"
    users = [int(u) for u in export.load_tenant(settings.export_dir, "0").users.ids]
    api = Api(env, tmp_path / "api.log").start()
    processes.append(api.process)

    latencies: list[float] = []
    problems: list[str] = []
    stop_at = time.monotonic() + SECONDS
    threads = [threading.Thread(target=_client, args=(api.url, users, latencies, problems,
                                                      stop_at, seed)) for seed in range(CLIENTS)]
    for thread in threads:
        thread.start()
    # While it runs: a new version every 1.4 s, then replaced ones deleted after their grace
    published, deleted = [], []
    for _ in range(PUBLISHES):
        time.sleep(SECONDS / (PUBLISHES + 1))
        # The saved model again under a new id (restore itself keeps the saved id, and so
        # would publish nothing new)
        published.append(_republish(settings, client))
        deleted += versions.collect_garbage(client, "0", settings.publish_grace_seconds)
    for thread in threads:
        thread.join(SECONDS + 10)

    p50, p95, p99 = (1000 * np.percentile(latencies, q) for q in (50, 95, 99))
    report.append(f"load while publishing: {len(latencies)} requests in {SECONDS} s "
          f"({CLIENTS} clients x {RATE_PER_CLIENT}/s), {len(published)} versions published, "
          f"{len(deleted)} deleted; latency p50 {p50:.1f} ms, p95 {p95:.1f} ms, "
          f"p99 {p99:.1f} ms, max {1000 * max(latencies):.1f} ms")
    assert problems == []
    assert len(latencies) >= 0.9 * CLIENTS * RATE_PER_CLIENT * SECONDS
    assert len(published) == PUBLISHES and deleted  # versions really changed under the readers
    assert versions.current_version(client, "0") == published[-1]
    assert p99 < 2000
