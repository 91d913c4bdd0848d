"""Explorer pages on a large tenant: time per page, and what the explorer's data costs in Redis.

Publishes a synthetic tenant (default 100,000 users, 10,000 items, 30 interactions per user,
top-K 50) with the real publisher (recommender.publish.release) into a private Redis, then asks
the API app in-process for each explorer page, HTML and JSON, --rounds times each after one
warm-up request, and prints p50/p99/max in ms (target: every page under 100 ms). Also prints
the publish time, and Redis memory (MEMORY USAGE) of the explorer's keys per user and per item
beside that of the lists.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import tempfile
import time
from pathlib import Path

import falcon.testing
import numpy as np
import redis

from api.app import create_app
from bench import servers
from published import keys, packing, versions
from published.savedmodel import FeatureParameters, SavedModel
from recommender.publish import explore, release
from recommender.publish.listsfile import Lists
from recommender.publish.neartop import NearTop
from runtime.config import from_env
from runtime.items import ITEM_TYPES, item_key

PASSWORD = "bench-explorer-password"
TARGET_MS = 100.0
BATCH = 5000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--interactions", type=int, default=30, help="per user")
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=50)
    parser.set_defaults(run=main)


def _model(args: argparse.Namespace, rng: np.random.Generator) -> SavedModel:
    n_users, n_items = args.users, args.items
    types = (np.arange(n_items) % len(ITEM_TYPES)).astype(np.uint8)
    numbers = np.arange(1, n_items + 1, dtype=np.uint32)
    indices = rng.integers(0, n_items, (n_users, args.interactions)).astype(np.int32)
    indices.sort(axis=1)
    small = FeatureParameters(np.array(["x"]), np.zeros((1, args.dim), np.float32),
                              np.zeros(1, np.float32))
    return SavedModel(
        user_ids=np.arange(1, n_users + 1, dtype=np.int64),
        user_emb=np.zeros((1, args.dim), np.float32),
        item_keys=np.array([item_key(int(t), int(n)) for t, n in zip(types, numbers,
                                                                      strict=True)]),
        item_numbers=numbers, item_types=types,
        item_emb=rng.normal(size=(n_items, args.dim)).astype(np.float32),
        item_bias=rng.normal(size=n_items).astype(np.float32),
        positives_indptr=np.arange(0, n_users * args.interactions + 1, args.interactions),
        positives_indices=indices.ravel(), popularity=np.zeros(n_items, np.float32),
        user_features=small, item_features=small)


def _source(model: SavedModel, args: argparse.Namespace, rng: np.random.Generator
            ) -> explore.Source:
    n = len(model.positives_indices)
    words = " ".join(f"word{i}" for i in range(60))
    return explore.Source(
        model.positives_indptr.astype(np.int64), model.positives_indices.astype(np.uint32),
        rng.integers(1_600_000_000, 1_700_000_000, n), rng.integers(0, 2, n).astype(np.int8),
        np.array(["topic_a|tag_b|tag_c"] * args.items), np.array([words] * args.items))


def _lists(model: SavedModel, args: argparse.Namespace, rng: np.random.Generator) -> Lists:
    by_type = [model.item_numbers[model.item_types == t] for t in range(len(ITEM_TYPES))]
    scores = -np.sort(-rng.random(args.top_k).astype(np.float32))

    def per_type() -> bytes:
        return packing.pack([(rng.choice(ids, min(args.top_k, len(ids)), replace=False),
                              scores[:min(args.top_k, len(ids))]) for ids in by_type])

    users = [[(int(u), per_type()) for u in model.user_ids[s:s + BATCH].tolist()]
             for s in range(0, args.users, BATCH)]
    items = [[(k, int(n), packing.pack([(rng.choice(by_type[int(t)], args.top_k), scores)]))
              for k, n, t in zip(model.item_keys.tolist(), model.item_numbers.tolist(),
                                 model.item_types.tolist(), strict=True)]]
    return Lists(args.top_k, per_type(), users, items)


def _explorer_share(client: redis.Redis, model: SavedModel, lists: Lists,
                    source: explore.Source) -> None:
    """The publish time that is the explorer's: counting the lists, writing its values."""
    started = time.perf_counter()
    tally = NearTop(model.item_types, model.item_numbers)
    for _ in tally.watch(lists.users):
        pass
    counted = time.perf_counter() - started
    writer = versions.VersionWriter(client, "0", "1000000000001-00000000")
    started = time.perf_counter()
    explore.publish(writer, model, source, tally, {"trained_at": 1.7e9})
    written = time.perf_counter() - started
    writer.abort()
    print(f"of which the explorer's: {counted:.1f} s counting the lists, {written:.1f} s "
          "writing histories, item facts and figures")


def _memory(client: redis.Redis, names: list[str]) -> int:
    pipe = client.pipeline(transaction=False)
    for name in names:
        pipe.memory_usage(name, samples=0)
    return sum(n or 0 for n in pipe.execute())


def _costs(client: redis.Redis, version: str, args: argparse.Namespace) -> None:
    def buckets(kind: str, count: int) -> list[str]:
        return [f"ml:{{0}}:v:{version}:{kind}:{b}" for b in range(count)]

    lists = _memory(client, buckets("u", keys.USER_BUCKETS))
    histories = _memory(client, buckets("h", keys.USER_BUCKETS))
    similar = _memory(client, buckets("i", keys.ITEM_BUCKETS))
    infos = _memory(client, buckets("f", keys.ITEM_BUCKETS))
    figures = _memory(client, [keys.figures("0", version)])
    print(f"redis: lists {lists / args.users:.0f} B/user, explorer histories "
          f"{histories / args.users:.0f} B/user ({args.interactions} interactions); similar "
          f"items {similar / args.items:.0f} B/item, explorer item facts "
          f"{infos / args.items:.0f} B/item; figures {figures} B per version")


def _pages(args: argparse.Namespace) -> list[tuple[str, str]]:
    user, item = args.users // 2, item_key(2, args.items // 2 - 2)
    pages = [("find", "/explore"), ("tenant", "/explore/tenants/0"),
             ("learner", f"/explore/tenants/0/users/{user}"),
             ("learner, cold", "/explore/tenants/0/users/999999999"),
             ("item", f"/explore/tenants/0/items/{item}")]
    return pages + [(f"{name} JSON", path.replace("/explore", "/explore/api", 1)
                     if path != "/explore" else "/explore/api/tenants") for name, path in pages]


def _time_pages(url: str, args: argparse.Namespace) -> bool:
    env = {"ML_TOTARA_URL": "http://127.0.0.1:9", "ML_TOTARA_KEY": "bench-key-0123456789abcdef",
           "ML_REDIS_URL": url, "ML_EXPLORER_PASSWORD": PASSWORD}
    app = create_app(from_env(env), redis.Redis.from_url(url))
    client = falcon.testing.TestClient(app)
    auth = {"Authorization": "Basic " + base64.b64encode(f"op:{PASSWORD}".encode()).decode()}
    worst = 0.0
    print(f"{'page':<20} {'first':>8} {'p50':>8} {'p99':>8} {'max':>8}  (ms)")
    for name, path in _pages(args):
        times = []
        for _ in range(args.rounds + 1):
            started = time.perf_counter()
            answer = client.simulate_get(path, headers=auth)
            times.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, (path, answer.status_code)
        first, rest = times[0], sorted(times[1:])
        p99 = rest[min(len(rest) - 1, int(len(rest) * 0.99))]
        worst = max(worst, p99)
        print(f"{name:<20} {first:8.1f} {statistics.median(rest):8.1f} {p99:8.1f} "
              f"{rest[-1]:8.1f}")
    print(f"slowest p99 {worst:.1f} ms: {'OK' if worst < TARGET_MS else 'ABOVE'} the "
          f"{TARGET_MS:.0f} ms target")
    return worst < TARGET_MS


def main(args: argparse.Namespace) -> int:
    rng = np.random.default_rng(17)
    with tempfile.TemporaryDirectory(prefix="bench-explorer-") as scratch:
        process, url = servers.start_redis(Path(scratch))
        try:
            client = redis.Redis.from_url(url)
            model = _model(args, rng)
            lists, source = _lists(model, args, rng), _source(model, args, rng)
            started = time.perf_counter()
            release.publish(client, "0", "1000000000000-00000000", model, lists,
                            {"status": "trained", "algorithm": "hybrid", "trained_at": 1.7e9,
                             "precision_at_10": 0.2, "n_users": args.users,
                             "n_items": args.items}, source)
            print(f"published {args.users} users, {args.items} items in "
                  f"{time.perf_counter() - started:.1f} s (explorer data included)")
            _explorer_share(client, model, lists, source)
            _costs(client, "1000000000000-00000000", args)
            return 0 if _time_pages(url, args) else 1
        finally:
            process.kill()
            process.wait()
