"""Publishing events: the helper the worker and scheduler use, and the operators' CLI.

    python -m consumer publish export-ready [--tenant T ...]
    python -m consumer publish retrain [--tenant T] [--algorithm A]
    python -m consumer publish train --tenant T [--algorithm A] [--force]
    python -m consumer publish interaction --tenant T --user-id U --item-id I [--timestamp S]
                                           [--rating 0|1]

It prints the published event (one JSON line) and exits 0; 2 for bad arguments or configuration,
1 when the broker cannot be reached. Totara's cron runs, after its export:
``php server/ml/recommender/cli/export_data.php && python -m consumer publish export-ready``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kombu import Connection, Producer

from consumer import events
from consumer.topology import Topology
from runtime.errors import ConfigError, InvalidEvent

log = logging.getLogger(__name__)


def publish_event(producer: Producer, topology: Topology, event: events.Event,
                  headers: Mapping[str, Any] | None = None, *, retry: bool = False) -> None:
    """Publish one event, persistent, routed by its type (confirmed by RabbitMQ on AMQP)."""
    producer.publish(event.body(), exchange=topology.exchange, routing_key=event.type,
                     serializer="json", delivery_mode=2, headers=dict(headers or {}),
                     retry=retry, retry_policy={"max_retries": 3, "interval_start": 0.5,
                                                "interval_step": 1, "interval_max": 3})


def send(connection: Connection, topology: Topology, event: events.Event,
         headers: Mapping[str, Any] | None = None) -> None:
    """Declare the topology (so nothing is lost before the first worker starts) and publish."""
    with connection.channel() as channel:
        topology.declare(channel)
        publish_event(Producer(channel), topology, event, headers, retry=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumer publish",
        description="Publish one event for the recommender workers (docs/events.md).")
    # The common options are accepted before and after the type; after it, SUPPRESS keeps an
    # absent option from overwriting one given before.
    common = argparse.ArgumentParser(add_help=False)
    for target, suppress in ((parser, False), (common, True)):
        target.add_argument("--id", dest="event_id", help="event id (default: a new UUID)",
                            **({"default": argparse.SUPPRESS} if suppress else {}))
        target.add_argument("--dry-run", action="store_true",
                            help="print the event, do not send it",
                            **({"default": argparse.SUPPRESS} if suppress else {}))
        target.add_argument("--connect-retries", type=int, metavar="N",
                            default=argparse.SUPPRESS if suppress else 3,
                            help="connection attempts after the first one fails (default 3)")
    kinds = parser.add_subparsers(dest="type", required=True, metavar="TYPE")

    def kind(name: str, text: str) -> argparse.ArgumentParser:
        return kinds.add_parser(name, help=text, parents=[common])

    ready = kind(events.EXPORT_READY, "a Totara export finished: train all")
    ready.add_argument("--tenant", action="append", dest="tenants", metavar="T",
                       help="only these tenants (repeatable); default: all in tenants.csv")

    retrain = kind(events.RETRAIN, "retrain one or all tenants, even unchanged")
    retrain.add_argument("--tenant")
    retrain.add_argument("--algorithm")

    train = kind(events.TRAIN, "train one tenant")
    train.add_argument("--tenant", required=True)
    train.add_argument("--algorithm")
    train.add_argument("--force", action="store_true", default=None,
                       help="train even when the export is the one already published")

    interaction = kind(events.INTERACTION, "record a user's interaction")
    interaction.add_argument("--tenant", default="0")
    interaction.add_argument("--user-id", required=True, type=int)
    interaction.add_argument("--item-id", required=True, help="such as engage_article12")
    interaction.add_argument("--timestamp", type=int, help="Unix seconds (default: now)")
    interaction.add_argument("--rating", type=int, choices=(0, 1))
    return parser


def event_from_args(args: argparse.Namespace) -> events.Event:
    """The event the parsed command line describes; raises ``InvalidEvent``."""
    fields: dict[str, Any] = {}
    if args.type == events.EXPORT_READY:
        fields["tenants"] = args.tenants
    elif args.type in (events.RETRAIN, events.TRAIN):
        fields.update(tenant=args.tenant, algorithm=args.algorithm)
        if args.type == events.TRAIN:
            fields["force"] = args.force
    else:
        fields.update(tenant=args.tenant, user_id=args.user_id, item_id=args.item_id,
                      timestamp=int(time.time()) if args.timestamp is None else args.timestamp,
                      rating=args.rating)
    return events.make_event(args.type, event_id=args.event_id, **fields)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        event = event_from_args(args)
    except InvalidEvent as exc:
        print(f"invalid event: {exc}", file=sys.stderr)
        return 2
    line = json.dumps(event.body(), separators=(",", ":"))
    if args.dry_run:
        print(line)
        return 0
    from consumer import broker
    from runtime import logsetup
    from runtime.config import load_or_exit

    settings = load_or_exit(require_totara=False)  # publishing never talks to Totara
    # kombu's warnings about the broker go through the service's format and redaction.
    logsetup.configure(settings.log_level, settings.log_format, [settings.totara_key])
    try:
        connection, topology = broker.from_settings(settings)
    except (ConfigError, RuntimeError) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        with connection:
            connection.ensure_connection(max_retries=max(0, args.connect_retries),
                                         interval_start=0.5, interval_step=1, interval_max=3)
            send(connection, topology, event)
    except Exception as exc:  # noqa: BLE001 - one line for cron mail, not a traceback
        print(f"could not publish to {connection.as_uri()}: {exc}", file=sys.stderr)
        return 1
    print(line)
    return 0
