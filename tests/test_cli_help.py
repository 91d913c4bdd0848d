"""The command lines as a person reads them: help texts render as plain text."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from recommender.__main__ import parser

# reStructuredText or Markdown that argparse would print as is, and argparse's own escapes.
MARKUP = re.compile(r"``|`[^`]+`|%%|\*\*|:\w+:`")


def _help(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", *args, "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_top_level_help_of_the_training_command_is_plain_text_naming_each_command():
    # Given the help a person gets first / Then it has no raw markup and names every command
    shown = _help("recommender")
    assert not MARKUP.search(shown), shown
    for command in ("train", "restore", "demo-data", "import-oulad", "evaluate"):
        assert command in shown


@pytest.mark.parametrize("command", ["train", "restore", "demo-data", "import-oulad",
                                     "evaluate"])
def test_each_subcommand_help_is_plain_text_and_says_what_it_does(command, capsys):
    with pytest.raises(SystemExit) as ended:
        parser().parse_args([command, "--help"])
    assert ended.value.code == 0
    shown = capsys.readouterr().out
    assert not MARKUP.search(shown), shown
    # the first lines after usage describe the command, not only list options
    described = shown.split("\n\n")[1]
    assert not described.startswith(("options:", "positional arguments:")), shown


@pytest.mark.parametrize("args", [("consumer",), ("consumer", "publish")])
def test_worker_and_publisher_help_is_plain_text(args):
    shown = _help(*args)
    assert not MARKUP.search(shown), shown
