"""The best precision@k any model can reach on demo data: an oracle that knows the generator.

The demo generator (offline.demo) puts every user and item in a hidden cluster and draws each
interaction from the user's cluster with probability IN_CLUSTER (by item popularity), else from
the whole catalogue (offline.demointeractions). Ranking a user's unseen items by that true
probability is what no model can beat on average. This replays the generator's random stream
for tenant 0 of ``demo-data --seed S`` to recover the clusters and item weights, then measures
the oracle on the split ``python -m recommender evaluate`` uses, so its figure is the ceiling
for that table.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--interactions", type=int, default=40000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--protocol", default="random", choices=("random", "time"))
    parser.set_defaults(run=main)


def _truth(args: argparse.Namespace, data) -> tuple[np.ndarray, np.ndarray]:
    """(cluster per user row, interaction probability per cluster x item) of tenant 0."""
    from recommender.offline import demo, demointeractions

    rng = np.random.default_rng([args.seed, 0])  # as write_demo_export seeds tenant 0
    n_clusters = int(np.clip(args.items // 15, 1, len(demo.THEMES)))
    user_columns, user_cluster = demo._users(rng, args.users, n_clusters)
    item_columns, item_cluster = demo._items(rng, args.items, n_clusters)
    weight = 1.0 / (1.0 + rng.permutation(args.items))  # the first draw of interaction_columns
    if (user_columns["user_id"].to_numpy() != data.users.ids).any() or (
            item_columns["item_id"].to_pylist() != list(data.items.keys)):
        raise RuntimeError("the replay does not match the generated export: demo.py changed")
    in_cluster = np.bincount(item_cluster, weights=weight, minlength=n_clusters)
    prob = np.tile((1 - demointeractions.IN_CLUSTER) * weight / weight.sum(), (n_clusters, 1))
    prob[item_cluster, np.arange(args.items)] += (demointeractions.IN_CLUSTER * weight
                                                  / in_cluster[item_cluster])
    return user_cluster, prob


def main(args: argparse.Namespace) -> int:
    from recommender.ingest import export
    from recommender.model import ranking
    from recommender.offline import demo, splits

    with tempfile.TemporaryDirectory(prefix="bench-ceiling-") as scratch:
        demo.write_demo_export(Path(scratch), tenants=1, users=args.users, items=args.items,
                               interactions=args.interactions, seed=args.seed)
        data = export.load_tenant(Path(scratch), "0")
    user_cluster, prob = _truth(args, data)
    part = splits.split(data, args.protocol, 0.2, 0)
    report = ranking.ranking_report(lambda rows: prob[user_cluster[rows]],
                                    part.train_matrix(), part.test, (5, 10, 25), with_auc=False)
    print(f"demo tenant 0 (seed {args.seed}): {len(data.users)} users, {len(data.items)} items, "
          f"{len(data.interactions)} interactions; {part.test.nnz} held out ({args.protocol})")
    for k, at in report["at"].items():
        print(f"oracle P@{k} {at['precision']:.4f}  R@{k} {at['recall']:.4f}  "
              f"NDCG@{k} {at['ndcg']:.4f}")
    print(f"ceiling_p10={report['at'][10]['precision']:.4f}")
    return 0
