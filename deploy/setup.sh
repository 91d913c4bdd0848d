#!/usr/bin/env bash
# Installs what the service needs into ./.venv: `deploy/setup.sh` for running it,
# `deploy/setup.sh --dev` for the test tools too. Safe to run again; fast when nothing changed.
# On a fresh Debian/Ubuntu machine it installs Python's venv module, headers and a C compiler
# (LightFM is built from source) with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

requirements="requirements.txt"
[ "${1:-}" = "--dev" ] && requirements="requirements.txt requirements-eval.txt requirements-dev.txt"
# The lock file pins every package, transitive ones too, with the hashes of its files: a fresh
# install is the tested install (README, "Pinned installs").
lock=requirements.lock
[ "${1:-}" = "--dev" ] && lock=requirements-dev.lock

python=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1 &&
     "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  echo "setup: Python 3.11 or newer is needed (python3.11 or python3 on PATH)" >&2
  exit 1
fi

system_ready() {
  "$python" -c 'import ensurepip, venv, sysconfig, os, sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
    2>/dev/null && command -v gcc >/dev/null 2>&1
}
if ! system_ready; then
  version=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
  packages="python${version}-venv python${version}-dev gcc g++"
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || command -v sudo >/dev/null; }; then
    sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
    echo "setup: installing $packages with apt-get"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $packages >/dev/null
  else
    echo "setup: please install $packages (venv module, Python headers, C compiler)" >&2
    exit 1
  fi
fi

step() { echo "setup: [$1/3] $2"; }

# pip's output, one labelled line per package or step (the whole of it in .venv/pip.log): a
# first install downloads ~40 packages and compiles LightFM, minutes in which nothing else shows.
progress() {
  local number=$1 total=$2 count=0 line
  while IFS= read -r line; do
    case "$line" in
      Collecting*)
        count=$((count + 1)); step "$number" "downloading ${line#Collecting } ($count of $total)" ;;
      *"Building wheel for"*started*)
        step "$number" "compiling ${line#*for } (LightFM: a minute or two)" ;;
      *"still running"*) step "$number" "still compiling..." ;;
      "Installing collected packages"*) step "$number" "unpacking into .venv" ;;
    esac
  done
}

# pip_install STEP TOTAL ARGS...: pip install ARGS, its progress labelled as step STEP.
pip_install() {
  local number=$1 total=$2; shift 2
  if ! .venv/bin/python -m pip install --disable-pip-version-check --progress-bar off "$@" \
      2>&1 | tee .venv/pip.log | progress "$number" "$total"; then
    echo "setup: pip failed; the end of its output (all of it: .venv/pip.log):" >&2
    tail -n 25 .venv/pip.log >&2
    exit 1
  fi
}

if [ ! -x .venv/bin/python ]; then
  step 1 "creating the virtual environment .venv"
  "$python" -m venv .venv
fi
digest=$({ cat pyproject.toml requirements*.txt requirements*.lock 2>/dev/null || true; } \
  | sha256sum)
stamp=.venv/.installed-${digest:0:16}-${lock%.lock}
if [ -e "$stamp" ]; then
  echo "setup: .venv is up to date ($lock)"
  exit 0
fi
step 1 "pip 24.3.1 in .venv"
pip_install 1 1 --upgrade pip==24.3.1
if [ -f "$lock" ]; then
  step 2 "installing the pinned packages of $lock"
  pip_install 2 "$(grep -c '^[A-Za-z0-9]' "$lock")" --require-hashes -r "$lock"
else
  step 2 "installing $requirements"
  # shellcheck disable=SC2046  # one -r per file
  pip_install 2 "?" $(printf -- '-r %s ' $requirements)
fi
# The service itself, editable: the console commands (totara-recommender-api, -worker,
# -publish, totara-recommender) run the code of this checkout.
step 3 "installing the service's commands into .venv/bin"
pip_install 3 1 --no-deps --no-build-isolation --editable .
touch "$stamp"
echo "setup: done; the commands are in .venv/bin (README, Commands)"
