"""Incremental retraining against a full fit: seconds, epochs and quality on the same new pairs.

A tenant's next export is simulated from one export: its latest ``--new-share`` of the
interactions (by timestamp) are what happened since the last training. A third of those is
kept out of both fits as a common test set; the rest is in the new export. The "old" model is a
full fit of the export without the new interactions, saved as production saves it. Then, on the
new export, the production code fits once from scratch (``train.fit``) and once from the saved
model (``warmstart.prepare`` + ``train.fit_incremental``), and both are measured on the test set,
as is the old model (what users would see without retraining).
Last line: ``incremental/full_seconds=.. full_p10=.. incremental_p10=.. old_p10=..``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from bench.pipeline import _generate


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--export-dir", type=Path, help="an export to use (default: generate "
                        "a demo export of --users x --items x --interactions)")
    parser.add_argument("--tenant", default="0")
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--items", type=int, default=2_000)
    parser.add_argument("--interactions", type=int, default=400_000)
    parser.add_argument("--new-share", type=float, default=0.1,
                        help="share of the interactions that are new since the last training")
    parser.add_argument("--algorithm", default="hybrid", choices=("hybrid", "partial", "mf"))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=main)


def _split(timestamps: np.ndarray, new_share: float,
           seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(new, test) masks over interactions: the latest ``new_share`` and a third of those."""
    rng = np.random.default_rng(seed)
    order = np.argsort(timestamps + 0.5 * rng.random(len(timestamps)), kind="stable")
    new = np.zeros(len(timestamps), bool)
    new[order[len(order) - int(len(order) * new_share):]] = True
    test = new & (rng.random(len(timestamps)) < 1 / 3)
    return new, test


def main(args: argparse.Namespace) -> int:
    from recommender.ingest import export
    from recommender.model import features, ranking, saving, train, warmstart
    from recommender.offline import contenders, splits
    from recommender.publish import modelfile

    params = train.TrainParams()
    with tempfile.TemporaryDirectory(prefix="bench-incremental-") as scratch:
        tmp = Path(scratch)
        source = args.export_dir
        if source is None:
            _generate(tmp / "export", args)
            source = tmp / "export"
        data = export.load_tenant(source, args.tenant)
        inter = data.interactions
        new, test = _split(inter.timestamps, args.new_share, args.seed)
        shape = (len(data.users), len(data.items))
        test_pairs = sp.csr_matrix((np.ones(int(test.sum()), np.float32),
                                    (inter.users[test], inter.items[test])), shape=shape)
        old_export = splits.keep_interactions(data, ~new)
        new_export = splits.keep_interactions(data, ~test)
        print(f"users {len(data.users)}, items {len(data.items)}: old export "
              f"{len(old_export.interactions)} interactions, new export "
              f"{len(new_export.interactions)} (+{int((new & ~test).sum())}), test pairs "
              f"{test_pairs.nnz}", flush=True)

        # Every model is measured against what the new export holds, the test pairs aside.
        seen = splits.Split("incremental", new_export, test_pairs).train_matrix()

        def measure(fitted: train.FitResult) -> dict[str, float]:
            return ranking.ranking_metrics(contenders.lightfm_scorer(fitted), seen, test_pairs,
                                           k=10)

        started = time.perf_counter()
        old_fs = features.build(old_export, args.algorithm)
        old = train.fit(old_fs, params, args.threads)
        print(f"old model (full fit)   {time.perf_counter() - started:8.1f} s, "
              f"{old.epochs_trained} epochs", flush=True)
        meta = {"algorithm": args.algorithm, "params": dict(params.__dict__),
                "identity_weight": old.identity_weight,
                "precision_at_10": old.validation["precision"]}
        modelfile.save(tmp / "models", data.tenant, "old",
                       saving.saved_model(old_export, old.model, old.features), meta)
        modelfile.mark_current(tmp / "models", data.tenant, "old")
        old_quality = measure(old)

        started = time.perf_counter()
        fs = features.build(new_export, args.algorithm)
        full = train.fit(fs, params, args.threads)
        full_seconds = time.perf_counter() - started
        print(f"full fit               {full_seconds:8.1f} s, {full.epochs_trained} epochs",
              flush=True)
        full_quality = measure(full)

        started = time.perf_counter()
        fs = features.build(new_export, args.algorithm)
        saved = warmstart.Saved("old", *modelfile.load(tmp / "models", data.tenant, "old"))
        warm, why = warmstart.prepare(saved, new_export, fs, args.algorithm,
                                      dict(params.__dict__), max_runs=1)
        if warm is None:
            print(f"no warm start: {why}")
            return 1
        incremental = train.fit_incremental(fs, params, warm, args.threads)
        if isinstance(incremental, str):
            print(f"no incremental fit: {incremental}")
            return 1
        inc_seconds = time.perf_counter() - started
        print(f"incremental fit        {inc_seconds:8.1f} s, {incremental.epochs_trained} "
              f"epochs (best {incremental.epochs}; validation on {incremental.held_out_pairs} "
              f"new pairs: {incremental.validation['precision']:.4f}, saved model "
              f"{incremental.warm_baseline:.4f})", flush=True)
        inc_quality = measure(incremental)
    for name, quality in (("old model", old_quality), ("full fit", full_quality),
                          ("incremental", inc_quality)):
        print(f"{name:<22} test P@10 {quality['precision']:.4f}  R@10 {quality['recall']:.4f}  "
              f"AUC {quality['auc']:.4f}")
    per_million = inc_seconds / (len(new_export.interactions) / 1e6)
    print(f"incremental: {full_seconds / inc_seconds:.1f}x faster than a full fit, "
          f"{per_million:.0f} s per million interactions")
    print(f"incremental/full_seconds={inc_seconds / full_seconds:.3f} "
          f"full_p10={full_quality['precision']:.4f} "
          f"incremental_p10={inc_quality['precision']:.4f} old_p10={old_quality['precision']:.4f}")
    return 0
