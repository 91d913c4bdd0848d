"""Command line: ``python -m recommender train | restore | demo-data | import-oulad | evaluate``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from published.runs import RunStatus
from recommender.outcome import TenantResult
from recommender.service import TrainingService
from runtime import logsetup
from runtime.config import Settings, load_or_exit
from runtime.errors import describe

# Outcomes of ``train`` that make the command fail (exit status 1).
TRAIN_TROUBLE = (RunStatus.FAILED, RunStatus.STALE, RunStatus.LOCKED)


def _settings_for(export_dir: Path | None) -> tuple[Settings, Path | None]:
    settings = load_or_exit(require_totara=False)
    export_dir = export_dir or settings.export_dir
    if export_dir is None:  # downloading from Totara needs its URL and the key
        settings = load_or_exit(require_totara=True)
    return settings, export_dir


def _logging(settings: Settings) -> None:
    # The service's format (ML_LOG_FORMAT) and redaction, as the API and the worker log.
    logsetup.configure(settings.log_level, settings.log_format, [settings.totara_key])
    # Per-stage progress is printed by the console; library INFO lines would repeat it. The
    # training side logs under its own packages and those it publishes through.
    for package in ("recommender", "published", "runtime"):
        logging.getLogger(package).setLevel(max(logging.WARNING, logging.root.level))


def _tenants(service: TrainingService, settings: Settings,
             export_dir: Path | None) -> list[str] | None:
    """Every tenant of the export, or None when Totara cannot give the list (said on stderr)."""
    from published import summary
    from runtime.errors import DownloadError

    try:
        return service.tenants(export_dir)
    except DownloadError as exc:
        summary.append(settings.logs_dir, settings.algorithm, "all", f"download failed: {exc}")
        print(f"error: could not get the tenant list from Totara: {exc}", file=sys.stderr)
        return None


def cmd_train(args: argparse.Namespace) -> int:
    settings, export_dir = _settings_for(args.export_dir)
    from published.locks import worker_name
    from recommender.console import ConsoleProgress, print_results
    from runtime import redisconn

    service = TrainingService(settings, redisconn.connect(settings),
                              owner=f"cli:{worker_name()}")
    tenants = args.tenant or _tenants(service, settings, export_dir)
    if tenants is None:
        return 1
    progress = ConsoleProgress()
    results = []
    for tenant in tenants:
        try:
            result = service.train(tenant, algorithm=args.algorithm, force=args.force,
                                   export_dir=export_dir, progress=progress)
        except Exception as exc:  # one tenant's failure must not stop the others
            logging.getLogger(__name__).debug("tenant %s failed", tenant, exc_info=True)
            result = TenantResult(tenant, RunStatus.FAILED, describe(exc),
                                  algorithm=args.algorithm or settings.algorithm)
        progress.finished(result)
        results.append(result)
    print_results(results)
    return 1 if any(r.status in TRAIN_TROUBLE for r in results) else 0


def cmd_restore(args: argparse.Namespace) -> int:
    settings = load_or_exit(require_totara=False)
    from recommender.console import print_results
    from runtime import redisconn

    service = TrainingService(settings, redisconn.connect(settings))
    results = service.restore(args.tenant or None)
    print_results(results)
    if not results:
        print(f"no saved models in {settings.models_dir}", file=sys.stderr)
    return 1 if not results or any(r.status in TRAIN_TROUBLE for r in results) else 0


def cmd_demo_data(args: argparse.Namespace) -> int:
    from recommender.offline import demo

    tenants = demo.write_demo_export(args.dir, tenants=args.tenants, users=args.users,
                                     items=args.items, interactions=args.interactions,
                                     seed=args.seed)
    print(f"wrote a demo export for tenants {', '.join(tenants)} to {args.dir}")
    return 0


def _at_least_7(text: str) -> int:
    """A period of at least a week: OULAD's ~300 days then make fewer than 100 periods."""
    if not text.isdecimal() or int(text) < 7:
        raise argparse.ArgumentTypeError(f"{text!r}: a whole number of days, at least 7")
    return int(text)


def cmd_import_oulad(args: argparse.Namespace) -> int:
    from recommender.offline import oulad

    counts = oulad.import_oulad(args.src, args.dir, period_days=args.period_days)
    print(f"wrote a Totara export of OULAD to {args.dir}: "
          + ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    settings = load_or_exit(require_totara=False)
    from recommender.ingest import export
    from recommender.offline import evalreport, evaluate
    from runtime.errors import ExportError

    ks = tuple(int(k) for k in args.k.split(",") if k.strip())
    modes = tuple(args.algorithm.split(",")) if args.algorithm else (settings.algorithm,)
    tenants = args.tenant or export.read_tenants(args.export_dir)
    command = "python -m recommender evaluate " + " ".join(sys.argv[2:])
    for tenant in tenants:
        try:
            data = export.load_tenant(args.export_dir, tenant)
        except ExportError as exc:
            print(f"tenant {tenant}: export rejected: {exc}", file=sys.stderr)
            return 1
        print(f"tenant {tenant}: {len(data.users)} users, {len(data.items)} items, "
              f"{len(data.interactions)} interactions; evaluating {', '.join(modes)}",
              flush=True)
        result = evaluate.run(data, protocol=args.protocol, ks=ks, modes=modes,
                              threads=settings.num_threads, seed=args.seed,
                              original_rounds=args.original_rounds,
                              cold_fraction=args.cold_fraction)
        paths = evalreport.write(result, args.out, command)
        print(evalreport.summary(result))
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0


# argparse prints descriptions as they are: plain sentences, no markup.
DESCRIPTION = ("Training side of the recommender: train and publish tenants, republish saved "
               "models, write demo or OULAD exports, evaluate offline. "
               "'COMMAND --help' describes each command.")


def _command(sub: argparse._SubParsersAction, name: str, text: str) -> argparse.ArgumentParser:
    """A subcommand whose own --help starts with what it does (the list shows the same text)."""
    return sub.add_parser(name, help=text, description=text[:1].upper() + text[1:] + ".")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m recommender", description=DESCRIPTION)
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = _command(sub, "train", "train every tenant (or some) and publish to Redis")
    train.add_argument("--export-dir", type=Path, help="read the export from this folder "
                       "instead of downloading it (default: ML_EXPORT_DIR)")
    train.add_argument("--tenant", action="append", default=[], help="only this tenant "
                       "(repeatable)")
    train.add_argument("--algorithm", choices=("hybrid", "partial", "mf"),
                       help="default: ML_RECOMMENDATION_ALGORITHM")
    train.add_argument("--force", action="store_true",
                       help="train even when this export is already published")
    train.set_defaults(run=cmd_train)
    restore = _command(sub, "restore", "republish the saved models without retraining")
    restore.add_argument("--tenant", action="append", default=[])
    restore.set_defaults(run=cmd_restore)
    demo = _command(sub, "demo-data", "write a synthetic Totara export")
    demo.add_argument("dir", type=Path)
    demo.add_argument("--tenants", type=int, default=3)
    demo.add_argument("--users", type=int, default=2000)
    demo.add_argument("--items", type=int, default=400)
    demo.add_argument("--interactions", type=int, default=40000)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=cmd_demo_data)
    oulad = _command(sub, "import-oulad", "turn the OULAD tables into a Totara export")
    oulad.add_argument("src", type=Path)
    oulad.add_argument("dir", type=Path)
    oulad.add_argument("--period-days", type=_at_least_7, default=None, metavar="N",
                       help="widen the catalogue: one item per resource and period of N days "
                            "in which it was used (default: one per resource)")
    oulad.set_defaults(run=cmd_import_oulad)
    evaluate = _command(sub, "evaluate", "measure the production training against "
                              "baselines on held-out interactions; reports under reports/")
    evaluate.add_argument("--export-dir", type=Path, required=True)
    evaluate.add_argument("--tenant", action="append", default=[],
                          help="only this tenant (repeatable; default: every tenant)")
    evaluate.add_argument("--protocol", choices=("random", "time"), default="random",
                          help="hold out a random 20 %% of each user's pairs, or the last 20 %%")
    evaluate.add_argument("--k", default="5,10,25", help="cut-offs, comma-separated")
    evaluate.add_argument("--algorithm", help="mode(s) to evaluate, comma-separated "
                          "(default: ML_RECOMMENDATION_ALGORITHM)")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--original-rounds", type=int, default=30,
                          help="search rounds of the original's configuration (0: fixed point)")
    evaluate.add_argument("--cold-fraction", type=float, default=0.1,
                          help="share of users and of items held out whole for the cold-start "
                          "measures (0: skip)")
    evaluate.add_argument("--out", type=Path, default=Path("reports"))
    evaluate.set_defaults(run=cmd_evaluate)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Every command logs the service's way (ML_LOG_FORMAT, redaction), the ones that read no
    # other setting too.
    _logging(load_or_exit(require_totara=False))
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
