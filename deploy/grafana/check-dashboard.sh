#!/usr/bin/env bash
# Type-checks totara-ml-dashboard.json against Grafana's own dashboard schema (the Dashboard type
# of the npm package @grafana/schema) with the TypeScript compiler. Needs node and npm; installs
# both packages into a temporary folder. Not part of the test suite (tests/test_deploy_recipes.py
# checks the structure and, with promtool, every query).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm init -y >/dev/null
npm install --silent --no-audit --no-fund typescript@5.9.3 @grafana/schema@13.2.3 >/dev/null
{
  echo 'import type { Dashboard } from "@grafana/schema/dist/types/raw/dashboard/x/types.gen";'
  printf 'const dashboard: Dashboard = '
  cat "$here/totara-ml-dashboard.json"
  echo ';'
  echo 'export default dashboard;'
} > check.ts
./node_modules/.bin/tsc --noEmit --strict --skipLibCheck check.ts
echo "totara-ml-dashboard.json matches Grafana's Dashboard schema (@grafana/schema 13.2.3)"
