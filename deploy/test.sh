#!/usr/bin/env bash
# The test suite: installs what it needs, checks style, runs pytest. Extra arguments go to pytest.
# Integration tests use Redis on 127.0.0.1:6379 and RabbitMQ on 127.0.0.1:5672 when they run
# (skipped when absent, except under CI=true where they must run: .ci/run starts them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh --dev
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
