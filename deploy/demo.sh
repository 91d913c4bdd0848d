#!/usr/bin/env bash
# One command from a fresh clone to a running service on the embedded default (no external Redis
# or RabbitMQ): installs, writes a demo Totara export, trains every tenant, then runs the API on
# port 5000, a worker and a local stand-in for Totara until Ctrl-C, which stops them all and the
# embedded Redis. Set ML_* variables to override the demo values; the values used are left in
# data/demo.env for a new shell (`set -a; . data/demo.env; set +a`).
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
export ML_EXPORT_DIR=${ML_EXPORT_DIR:-$PWD/data/demo-export}
export ML_BIND=${ML_BIND:-*:5000}
export ML_NUM_THREADS=${ML_NUM_THREADS:-$(nproc)}
port=${ML_BIND##*:}
# Without a Totara site, a stand-in on the next port answers the health check's status call.
standin=http://127.0.0.1:$((port + 1))
procfiles=(-f Procfile)
if [ "${ML_TOTARA_URL:-$standin}" = "$standin" ]; then
  procfiles=(-f deploy/demo.Procfile -f Procfile)
fi
export ML_TOTARA_URL=${ML_TOTARA_URL:-$standin}

# What a new shell needs for `honcho start`, `python -m consumer` or `python -m recommender`
# (the key included: readable by this user only).
(umask 077; {
  echo "# deploy/demo.sh's settings. In a new shell, in this folder: set -a; . data/demo.env; set +a"
  echo "PATH=$(printf '%q' "$PWD/.venv/bin"):\$PATH"
  for name in $(compgen -e | grep '^ML_' | sort); do
    printf '%s=%q\n' "$name" "${!name}"
  done
} > data/demo.env)

# Ctrl-C while training: the embedded Redis the training started stops too.
trap 'python -m runtime.launcher --stop-embedded-redis; exit 130' INT TERM
if [ ! -e "$ML_EXPORT_DIR/tenants.csv" ]; then
  python -m recommender demo-data "$ML_EXPORT_DIR"
fi
python -m recommender train
trap - INT TERM

user=$(sed -n 2p "$ML_EXPORT_DIR/user_data_0.csv" | cut -d, -f1)
health="/health-check calls the Totara site at $ML_TOTARA_URL" stopped="the worker"
if [ "$ML_TOTARA_URL" = "$standin" ]; then
  health="/health-check calls a local stand-in for Totara on $standin"
  stopped="the worker, the Totara stand-in"
fi
cat <<TEXT

The service is starting on port $port. Point Totara at it with
  \$CFG->ml_service_url = 'http://$(hostname -f 2>/dev/null || hostname):$port';
  \$CFG->ml_service_key = '$ML_TOTARA_KEY';
or call it as Totara does (a signature of the time and the key, and Totara's User-Agent):
  t=\$(date +%s); sig=\$(printf '%s%s' "\$t" '$ML_TOTARA_KEY' | sha256sum | cut -d' ' -f1)
  curl -A TotaraBot/1.0 -H "X-Totara-Time: \$t" -H "X-Totara-Ml-Key: \$sig" \\
    'http://127.0.0.1:$port/user-items?totara_user_id=$user&item_type=container_course&tenant=0&n_items=5'
Status page: http://127.0.0.1:$port/   ($health)
Settings for a new shell: set -a; . data/demo.env; set +a
Ctrl-C stops everything: the API, $stopped and the embedded Redis.

TEXT
exec python -m runtime.launcher "${procfiles[@]}"
