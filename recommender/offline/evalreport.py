"""Reports of offline.evaluate: Markdown, JSON and a PNG of precision@k and recall@k vs k."""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def _f(value: float | None, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, " \
           f"Python {platform.python_version()}"


def _overall_table(result: dict) -> list[str]:
    ks = result["ks"]
    head = ["model"] + [f"P@{k}" for k in ks] + [f"R@{k}" for k in ks] + \
           [f"NDCG@{k}" for k in ks] + ["AUC", "coverage@10", "× best baseline",
                                         "train s", "cost"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in result["models"]:
        overall = row["warm"]["overall"]
        at = overall["at"]
        cells = [row["name"]]
        cells += [_f(at[k]["precision"]) for k in ks] + [_f(at[k]["recall"]) for k in ks]
        cells += [_f(at[k]["ndcg"]) for k in ks]
        cells += [_f(overall["auc"]), _f(at[10]["coverage"]),
                  _f(row["ratio_to_best_baseline"], 2), _f(row["seconds"], 1),
                  str(row["cost"]) if row["cost"] else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _types_table(result: dict) -> list[str]:
    types = sorted({t for row in result["models"] for t in row["warm"]["types"]})
    if not types:
        return []
    lines = ["| model | " + " | ".join(f"{t} P@10" for t in types) + " |",
             "|---|" + "---|" * len(types)]
    for row in result["models"]:
        got = row["warm"]["types"]
        lines.append(f"| {row['name']} | " + " | ".join(
            _f(got[t]["precision"]) if t in got else "–" for t in types) + " |")
    users = result["models"][0]["warm"]["types"]
    lines.append("")
    lines.append("Users measured per type: " + ", ".join(
        f"{t} {users[t]['users']}" for t in types if t in users) + ".")
    return lines


def _cold_table(result: dict) -> list[str]:
    rows = [r for r in result["models"] if "cold" in r]
    if not rows:
        return []
    lines = ["| model | cold users P@10 | R@10 | NDCG@10 | AUC | cold items P@10 | R@10 | "
             "NDCG@10 | AUC | within type P@10 | AUC |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        users, items = row["cold"]["users"], row["cold"]["items"]
        typed = row["cold"]["items_within_type"]
        lines.append(f"| {row['name']} | " + " | ".join(
            [_f(users["precision"]), _f(users["recall"]), _f(users["ndcg"]), _f(users["auc"]),
             _f(items["precision"]), _f(items["recall"]), _f(items["ndcg"]), _f(items["auc"]),
             _f(typed["precision"]), _f(typed["auc"])]) + " |")
    first = rows[0]["cold"]
    lines += ["", f"Cold users: {first['users']['users']} users with all their interactions "
              f"held out, ranked over every item. Cold items: {first['items']['candidates']} "
              f"items with all their interactions held out, ranked among themselves for "
              f"{first['items']['users']} users who interacted with them; \"within type\": "
              f"among the cold items of each type, as the per-type lists show them "
              f"({first['items_within_type']['pairs']} user-type pairs)."]
    return lines


def markdown(result: dict, command: str) -> str:
    counts = result["counts"]
    lines = [f"# Evaluation of tenant {result['tenant']} ({result['protocol']} split)", "",
             f"- command: `{command}`",
             f"- date: {result['date']}", f"- machine: {result['machine']}",
             f"- data: {counts['users']} users, {counts['items']} items, "
             f"{counts['interactions']} interactions ({counts['rating_1_share']:.0%} rating 1); "
             f"{counts['test']} held-out pairs of {counts['test_users']} users",
             f"- threads: {result['threads']}, seed: {result['seed']}, "
             f"best baseline: {result['best_baseline']}", "",
             "## Overall (held-out pairs of known users, items seen in training excluded)", ""]
    lines += _overall_table(result)
    lines += ["", "`cost` is epochs × components summed over every LightFM fit (search, "
              "early-stopped fit, refit).", "", "## Per item type (ranked within the type, as "
              "the published lists are)", ""]
    lines += _types_table(result)
    cold = _cold_table(result)
    if cold:
        lines += ["", "## Cold start (separate split, same hyper-parameters)", ""] + cold
    lines += ["", "## Details", ""]
    for row in result["models"]:
        info = {k: v for k, v in row["info"].items() if k != "search"}
        lines.append(f"- {row['name']}: {json.dumps(info)}")
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> bool:
    """Draw the precision and recall curves; False (and a warning) without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        # An optional extra: the service runs without it, and the report's tables do not need it.
        log.warning("no plot: matplotlib is not installed (pip install "
                    "'totara-recommender[eval]' or pip install -r requirements-eval.txt); "
                    "the tables are in the .md and .json reports")
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for row in result["models"]:
        curve = row["warm"]["overall"]["curve"]
        ks = np.arange(1, len(curve["precision"]) + 1)
        style = "-" if row["kind"] == "model" else "--"
        axes[0].plot(ks, curve["precision"], style, label=row["name"])
        axes[1].plot(ks, curve["recall"], style, label=row["name"])
    for axis, name in zip(axes, ("precision@k", "recall@k"), strict=True):
        axis.set_xlabel("k")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"tenant {result['tenant']}, {result['protocol']} split")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write(result: dict, out_dir: Path, command: str) -> list[Path]:
    """Write ``evaluation_<tenant>_<protocol>.{md,json,png}``; returns the paths written."""
    result.setdefault("date", time.strftime("%Y-%m-%d %H:%M %Z"))
    result.setdefault("machine", machine())
    result["command"] = command
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"evaluation_{result['tenant']}_{result['protocol']}"
    paths = [stem.with_suffix(".md"), stem.with_suffix(".json"), stem.with_suffix(".png")]
    paths[0].write_text(markdown(result, command))
    paths[1].write_text(json.dumps(result, indent=1, default=float))
    return paths if plot(result, paths[2]) else paths[:2]


def summary(result: dict) -> str:
    """A few console lines: P@10 and the ratio to the best baseline per model."""
    lines = []
    for row in result["models"]:
        at = row["warm"]["overall"]["at"][10]
        lines.append(f"  {row['name']:<32} P@10 {at['precision']:.4f}  R@10 {at['recall']:.4f}"
                     f"  × best baseline {row['ratio_to_best_baseline']:.2f}"
                     f"  ({row['seconds']:.1f} s)")
    return "\n".join(lines)
