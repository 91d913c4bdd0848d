#!/usr/bin/env bash
# One command from a fresh clone to a running service on the embedded default (no external Redis
# or RabbitMQ): installs, writes a demo Totara export, trains every tenant, then runs the API on
# port 5000 and a worker (Ctrl-C stops both). Set ML_* variables to override the demo values.
set -euo pipefail
cd "$(dirname "$0")/.."
# --dev: the demo runs the Procfile with honcho, a development tool (requirements-dev.txt).
bash deploy/setup.sh --dev
export PATH="$PWD/.venv/bin:$PATH"  # the Procfile runs gunicorn and python from the venv

mkdir -p data
if [ -z "${ML_TOTARA_KEY:-}" ]; then
  [ -s data/demo-key ] || python -c 'import secrets; print(secrets.token_hex(16))' \
    > data/demo-key
  ML_TOTARA_KEY=$(cat data/demo-key)
fi
export ML_TOTARA_KEY
export ML_TOTARA_URL=${ML_TOTARA_URL:-http://localhost/totara}
export ML_EXPORT_DIR=${ML_EXPORT_DIR:-$PWD/data/demo-export}
export ML_BIND=${ML_BIND:-*:5000}
export ML_NUM_THREADS=${ML_NUM_THREADS:-$(nproc)}

if [ ! -e "$ML_EXPORT_DIR/tenants.csv" ]; then
  python -m recommender demo-data "$ML_EXPORT_DIR"
fi
python -m recommender train

port=${ML_BIND##*:}
user=$(sed -n 2p "$ML_EXPORT_DIR/user_data_0.csv" | cut -d, -f1)
cat <<TEXT

The service is starting on port $port. Point Totara at it with
  \$CFG->ml_service_url = 'http://$(hostname -f 2>/dev/null || hostname):$port';
  \$CFG->ml_service_key = '$ML_TOTARA_KEY';
or call it as Totara does (a signature of the time and the key, and Totara's User-Agent):
  t=\$(date +%s); sig=\$(printf '%s%s' "\$t" '$ML_TOTARA_KEY' | sha256sum | cut -d' ' -f1)
  curl -A TotaraBot/1.0 -H "X-Totara-Time: \$t" -H "X-Totara-Ml-Key: \$sig" \\
    'http://127.0.0.1:$port/user-items?totara_user_id=$user&item_type=container_course&tenant=0&n_items=5'
Status page: http://127.0.0.1:$port/   Ctrl-C stops the API and the worker.

TEXT
exec honcho start -f Procfile
