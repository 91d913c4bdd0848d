"""The training pipeline at size: each stage measured beside its bound on this machine.

Generates a demo export (in a subprocess, so its memory does not count), then runs the
production code stage by stage: parse and validate, features, fit, precompute (into the lists
file saved beside the model), publish (from that file) into a private Redis. Beside precompute
it measures a bare numpy bound (the same user x item products followed by ``argpartition`` for
the same number of lists); beside publish, a bare pipelined client writing the same keys and
bytes with nothing else to do. Ratios to those bounds are what to compare between runs:
absolute times drift on a shared machine. Writing the lists file is timed apart from both.
Last line: ``precompute/bound=.. publish/bound=.. parse_rows_per_s=.. peak_rss_mb=..
redis_bytes_per_entry=.. lists_file_bytes_per_user=..``.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import redis

from bench import servers

TARGETS = {"precompute/bound": 1.5, "publish/bound": 2.0}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--interactions", type=int, default=2_000_000)
    parser.add_argument("--algorithm", default="hybrid", choices=("hybrid", "partial", "mf"))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--max-epochs", type=int, default=40)
    parser.add_argument("--top-k", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=main)


class Clock:
    """Seconds per named stage, printed as they finish."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, name: str, work, *args, **kwargs):
        started = time.perf_counter()
        result = work(*args, **kwargs)
        self.seconds[name] = time.perf_counter() - started
        print(f"{name:<22} {self.seconds[name]:8.2f} s", flush=True)
        return result


def _generate(dest: Path, args: argparse.Namespace) -> None:
    command = [sys.executable, "-m", "recommender", "demo-data", str(dest), "--tenants", "1",
               "--users", str(args.users), "--items", str(args.items),
               "--interactions", str(args.interactions), "--seed", str(args.seed)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def _precompute_and_publish(client: redis.Redis, model, top_k: int, threads: int,
                            folder: Path) -> dict[str, float]:
    """The production save and publish: the lists computed into their file (the time inside
    the list generators kept apart from the file's), then published from it into Redis.
    ``threads`` as the pipeline gives them (ML_NUM_THREADS): the bound's re-ranker has as many."""
    import struct

    from published import versions
    from recommender.publish import listsfile, precompute, release

    spent = {"precompute": 0.0, "counting": 0.0, "entries": 0}

    def timed(generator):
        while True:
            started = time.perf_counter()
            batch = next(generator, None)
            spent["precompute"] += time.perf_counter() - started
            if batch is None:
                return
            started = time.perf_counter()
            for *_, blob in batch:  # entries from each packed value's section counts
                spent["entries"] += sum(struct.unpack_from(f"<{blob[1]}H", blob, 2))
            spent["counting"] += time.perf_counter() - started
            yield batch

    path = folder / "0.lists.npz"
    started = time.perf_counter()
    with path.open("wb") as handle:
        listsfile.write(handle, precompute.lists(model, top_k, threads, batches=timed))
    total = time.perf_counter() - started
    spent["lists_file"] = total - spent["precompute"] - spent["counting"]
    size = path.stat().st_size
    spent["lists_file_bytes_per_user"] = size / max(len(model.user_ids), 1)
    print(f"{'lists file':<22} {spent['lists_file']:8.2f} s   {size / 2**20:.1f} MiB, "
          f"{spent['lists_file_bytes_per_user']:.0f} bytes per user", flush=True)
    started = time.perf_counter()
    with listsfile.read(path) as lists:
        release.publish(client, "0", versions.new_version(), model, lists, {"status": "trained"})
    spent["publish"] = time.perf_counter() - started
    return spent


def _other_values(client: redis.Redis) -> dict[str, bytes | dict[bytes, bytes]]:
    """The current version's values other than the user lists (the model's arrays, popular
    and similar-item lists, the explorer's item facts and figures, the meta), by key suffix."""
    from published import keys, versions

    version = versions.current_version(client, "0")
    prefix = keys.meta("0", version).removesuffix("meta")
    values: dict[str, bytes | dict[bytes, bytes]] = {}
    for name in keys.version_keys("0", version):
        kind = client.type(name)
        if ":u:" not in name and kind in (b"hash", b"string"):
            read = client.hgetall if kind == b"hash" else client.get
            values[name.removeprefix(prefix)] = read(name)
    return values


def _precompute_bound(emb, top_k: int) -> float:
    """Bare numpy: the same products (with the item-item part's, when the lists blend it, and
    the re-ranker's two more and its predictions, when they are re-ranked) and one
    argpartition per list, nothing else. The re-ranker predicts the first batch's real
    candidate rows for every batch (built before the clock starts): LightGBM is about 1.5x
    faster on rows of zeros, which take one path through every tree."""
    from recommender.model import rerank, rerankfeatures
    from recommender.publish.topk import BATCH_USERS
    from runtime.items import FAMILY_OF_TYPE

    order = np.argsort(emb.item_types, kind="stable")
    items = np.ascontiguousarray(emb.item_emb[order].T)
    types = emb.item_types[order]
    bounds = [(np.searchsorted(types, t), np.searchsorted(types, t, "right")) for t in range(5)]
    blended = emb.item_item is not None and emb.blend_weight > 0
    ranker = emb.ranker if blended else None
    batch = rerank.BATCH_USERS if ranker else BATCH_USERS
    n_candidates = sum(min(rerankfeatures.CANDIDATES, hi - lo) for lo, hi in bounds)
    rows = _candidate_rows(emb, batch) if ranker else None
    started = time.perf_counter()
    if blended:
        weights, cosine = emb.item_item.weights, emb.item_item.cosine
    for start in range(0, len(emb.user_emb), batch):
        scores = emb.user_emb[start:start + batch] @ items
        history = emb.positives[start:start + batch]
        if blended:
            scores += (history @ weights).toarray()
        if ranker:
            # The re-ranker's sums and, for its maxima over the history, the stored pairs of
            # the history items' rows: nnz(history) x k products each.
            scores += (history @ cosine).toarray()
            scores += (emb.repeats[start:start + batch] @ weights).toarray()
            weights[history.indices].max()
            cosine[history.indices].max()
            ranker.predict(rows[:len(scores) * n_candidates])
        for lo, hi in bounds:
            if hi - lo > top_k:
                np.argpartition(scores[:, lo:hi], -top_k, axis=1)
    family = np.asarray(FAMILY_OF_TYPE)[types]
    for f in np.unique(family):
        members = np.flatnonzero(family == f)
        block = emb.item_emb[order][members]
        for start in range(0, len(members), BATCH_USERS):
            scores = block[start:start + BATCH_USERS] @ block.T
            if len(members) > top_k:
                np.argpartition(scores, -top_k, axis=1)
    return time.perf_counter() - started


def _candidate_rows(emb, batch: int) -> np.ndarray:
    """The re-ranker's feature rows of the first ``batch`` users' candidates."""
    from recommender.model import rerankfeatures

    sig = rerankfeatures.signals(emb.positives, emb.repeats, emb.item_item.weights,
                                 emb.item_item.cosine, emb.blend_weight, emb.item_types)
    scores = (emb.user_emb[:batch] @ emb.item_emb.T + emb.item_bias).astype(np.float32)
    return rerankfeatures.batch(scores, emb.positives[:batch], emb.repeats[:batch],
                                sig).features


def _publish_bound(client: redis.Redis, emb, sample: list[tuple[int, bytes]],
                   others: dict[str, bytes | dict[bytes, bytes]]) -> float:
    """A bare pipelined client: the same hashes, fields and value sizes for the user lists,
    every other value of the version (``others``) as it is, nothing else."""
    from published import keys

    size = round(np.mean([len(b) for _, b in sample]))
    blob = bytes(size)
    prefix = keys.meta("b", "bound").removesuffix("meta")
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for suffix, value in others.items():
        if isinstance(value, dict):
            pipe.hset(prefix + suffix, mapping=value)
        else:
            pipe.set(prefix + suffix, value)
    pending = len(others)
    for start in range(0, len(emb.user_ids), 2048):
        buckets: dict[str, dict[str, bytes]] = {}
        for user in emb.user_ids[start:start + 2048].tolist():
            buckets.setdefault(keys.user_bucket("b", "bound", user), {})[str(user)] = blob
        for key, mapping in buckets.items():
            pipe.hset(key, mapping=mapping)
            pending += 1
            if pending >= 256:
                pipe.execute()
                pending = 0
    pipe.execute()
    elapsed = time.perf_counter() - started
    for name in keys.version_keys("b", "bound"):
        client.unlink(name)
    return elapsed


def main(args: argparse.Namespace) -> int:
    from recommender.ingest import export
    from recommender.model import features, saving, train
    from recommender.publish import precompute, topk

    clock = Clock()
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as scratch:
        tmp = Path(scratch)
        clock.run("generate (subprocess)", _generate, tmp / "export", args)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        data = clock.run("parse + validate", export.load_tenant, tmp / "export", "0")
        rows = sum(v for k, v in data.stats.items() if k.endswith("_rows"))
        parse_seconds = sum(v for k, v in data.stats.items() if k.endswith("_seconds"))
        fs = clock.run("features", features.build, data, args.algorithm)
        params = train.TrainParams(max_epochs=args.max_epochs)
        fitted = clock.run("fit", train.fit, fs, params, args.threads)
        model = saving.saved_model(data, fitted.model, fitted.features, fitted.item_item,
                                   fitted.blend.weight, fitted.ranker)
        emb = precompute.embeddings(model, args.threads)
        process, url = servers.start_redis(tmp)
        try:
            client = redis.Redis.from_url(url)
            memory_before = client.info("memory")["used_memory"]
            spent = _precompute_and_publish(client, model, args.top_k, args.threads, tmp)
            redis_bytes = client.info("memory")["used_memory"] - memory_before
            sample = next(topk.user_lists(emb, args.top_k, batch=64))
            publish_bound = _publish_bound(client, emb, sample, _other_values(client))
        finally:
            process.terminate()
            process.wait(timeout=10)
        precompute_bound = _precompute_bound(emb, args.top_k)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # Every validation epoch of every identity share tried, the refit's epochs excluded.
    epochs = max(fitted.epochs_trained - fitted.epochs, 1)
    print(f"{'precompute':<22} {spent['precompute']:8.2f} s   bound {precompute_bound:.2f} s")
    print(f"{'publish':<22} {spent['publish']:8.2f} s   bound {publish_bound:.2f} s")
    per_epoch = fitted.seconds["validation_fit"] / epochs
    print(f"users {len(data.users)}, items {len(data.items)}, interactions "
          f"{len(data.interactions)}; {epochs} epochs ({per_epoch:.2f} s each with validation, "
          f"refit {fitted.seconds['refit']:.1f} s), validation P@10 "
          f"{fitted.validation['precision']:.4f}")
    blend = fitted.blend
    what = blend.describe() if blend.used else blend.reason
    print(f"item-item part: {what}; "
          f"choice {fitted.seconds['layers_choice']:.1f} s, "
          f"refit {fitted.seconds.get('item_item', 0.0):.1f} s")
    chosen = fitted.layers.rerank
    print(f"re-ranker: {'kept' if chosen.ranker else chosen.reason or 'not tried'}; "
          + ", ".join(f"validation P@10 {k} {v:.4f}" for k, v in chosen.precision.items()))
    per_user = redis_bytes / max(len(emb.user_ids), 1)
    print(f"Redis: {redis_bytes / 2**20:.1f} MiB for {spent['entries']} list entries, "
          f"{per_user:.0f} bytes per user; peak RSS {peak_rss_mb:.0f} MiB (before parsing "
          f"{rss_before / 1024:.0f} MiB)")
    ratios = {"precompute/bound": spent["precompute"] / precompute_bound,
              "publish/bound": spent["publish"] / publish_bound}
    misses = [f"{k} {v:.2f} > {TARGETS[k]}" for k, v in ratios.items() if v > TARGETS[k]]
    if misses:
        print("above target: " + ", ".join(misses))
    print(f"precompute/bound={ratios['precompute/bound']:.2f} "
          f"publish/bound={ratios['publish/bound']:.2f} "
          f"parse_rows_per_s={rows / parse_seconds:.0f} peak_rss_mb={peak_rss_mb:.0f} "
          f"redis_bytes_per_entry={redis_bytes / max(spent['entries'], 1):.2f} "
          f"lists_file_bytes_per_user={spent['lists_file_bytes_per_user']:.0f}")
    return 0
