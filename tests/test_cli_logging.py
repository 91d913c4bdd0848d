"""Every command logs through the service's setup: ML_LOG_FORMAT and redaction of the key,
signatures and URL passwords, whichever entry point a process started from."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.signing import signature

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "consumer", "recommender", "runtime", "published", "bench")
SIGNATURE = signature("1700000000", "some-key")

# Each entry point's own set-up, then a line from a library logger that carries secrets.
ENTRY_SETUPS = {
    "training command line": (
        "import os, sys\n"
        "from recommender.__main__ import main\n"
        "main(['demo-data', os.environ['EXPORT'], '--tenants', '1', '--users', '20',\n"
        "      '--items', '12', '--interactions', '100'])\n"),
    "publisher": (
        "from consumer.sender import main\n"
        "main(['export-ready', '--connect-retries', '0'])\n"),
}


def _run(setup: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    code = setup + (
        "import logging, os\n"
        "logging.getLogger('kombu.connection').warning(\n"
        "    'key %s sig %s url %s', os.environ['ML_TOTARA_KEY'], os.environ['SIG'],\n"
        "    'amqp://ml:pa55word@rabbit//')\n")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize("entry", sorted(ENTRY_SETUPS))
def test_entry_point_logs_json_lines_with_secrets_redacted(entry, base_env, tmp_path):
    # Given ML_LOG_FORMAT=json and a key, a signature and a URL password in a log call
    env = {**os.environ, **base_env, "ML_LOG_FORMAT": "json", "SIG": SIGNATURE,
           "EXPORT": str(tmp_path / "export"),
           "ML_BROKER_URL": "amqp://ml:pa55word@127.0.0.1:1//"}
    # When the entry point has set logging up
    done = _run(ENTRY_SETUPS[entry], env)
    # Then the library's line is one JSON object with nothing secret in it
    lines = [line for line in done.stderr.splitlines() if "sig" in line and "key" in line]
    assert lines, done.stderr
    record = json.loads(lines[-1])
    assert record["logger"] == "kombu.connection" and record["level"] == "WARNING"
    for secret in (base_env["ML_TOTARA_KEY"], SIGNATURE, "pa55word"):
        assert secret not in done.stderr


def test_no_module_sets_logging_up_by_itself():
    # logging.basicConfig (or a handler of its own on the root logger) would bypass the format
    # and the redaction of runtime.logsetup.
    offenders = [str(path.relative_to(ROOT)) for package in PACKAGES
                 for path in (ROOT / package).rglob("*.py")
                 if re.search(r"logging\.basicConfig\(", path.read_text())]
    assert offenders == []
