"""``python -m consumer``: run a worker; ``python -m consumer publish ...``: publish an event."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "publish":
        from consumer.sender import main as publish_main

        return publish_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m consumer",
        description="Recommender worker: trains on export-ready/train events, records "
                    "interactions, runs the retrain timer. 'python -m consumer publish -h' "
                    "publishes events.")
    parser.add_argument("--alive-file", type=Path,
                        help="touched every few seconds while the loop runs (health checks)")
    args = parser.parse_args(argv)
    from consumer.app import run_worker

    return run_worker(alive_file=args.alive_file)


if __name__ == "__main__":
    raise SystemExit(main())
