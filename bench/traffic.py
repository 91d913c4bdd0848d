"""Totara-like traffic against a running service (placeholder, replaced below)."""
import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(run=lambda args: 0)
