"""``python -m bench <name>``: run one benchmark and print its results."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    top = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = top.add_subparsers(dest="bench", required=True)
    from bench import api, ceiling, explorer, handler, incremental, pipeline, traffic

    api.add_arguments(sub.add_parser("api", help=api.__doc__.splitlines()[0]))
    pipeline.add_arguments(sub.add_parser("pipeline", help=pipeline.__doc__.splitlines()[0]))
    incremental.add_arguments(sub.add_parser("incremental",
                                             help=incremental.__doc__.splitlines()[0]))
    ceiling.add_arguments(sub.add_parser("ceiling", help=ceiling.__doc__.splitlines()[0]))
    handler.add_arguments(sub.add_parser("handler", help=handler.__doc__.splitlines()[0]))
    traffic.add_arguments(sub.add_parser("traffic", help=traffic.__doc__.splitlines()[0]))
    explorer.add_arguments(sub.add_parser("explorer", help=explorer.__doc__.splitlines()[0]))
    args = top.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
