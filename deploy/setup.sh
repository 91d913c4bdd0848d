#!/usr/bin/env bash
# Installs what the service needs into ./.venv: `deploy/setup.sh` for running it,
# `deploy/setup.sh --dev` for the test tools too. Safe to run again; fast when nothing changed.
# On a fresh Debian/Ubuntu machine it installs Python's venv module, headers and a C compiler
# (LightFM is built from source) with apt-get when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

requirements=requirements.txt
[ "${1:-}" = "--dev" ] && requirements=requirements-dev.txt
# The lock file pins every package, transitive ones too, with the hashes of its files: a fresh
# install is the tested install (README, "Pinned installs").
lock=${requirements%.txt}.lock

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

[ -x .venv/bin/python ] || "$python" -m venv .venv
digest=$({ cat requirements*.txt requirements*.lock 2>/dev/null || true; } | sha256sum)
stamp=.venv/.installed-${digest:0:16}-$(basename "$requirements")
if [ ! -e "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip==24.3.1
  if [ -f "$lock" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
      -r "$lock"
  else
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
  fi
  touch "$stamp"
fi
