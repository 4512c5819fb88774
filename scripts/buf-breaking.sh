#!/usr/bin/env bash
# `buf breaking` against a git ref (default: the previous commit). buf's git
# input cannot see node_modules, where google-proto-files provides the
# google.api imports, so the old protos are laid out beside a link to ours.
set -euo pipefail
cd "$(dirname "$0")/.."
ref="${1:-HEAD~1}"
if ! git rev-parse --verify --quiet "$ref^{commit}" >/dev/null; then
  echo "buf breaking: no $ref in this clone; skipped"
  exit 0
fi
old="$(mktemp -d)"
trap 'rm -rf "$old"' EXIT
git archive "$ref" buf.yaml proto | tar -x -C "$old"
ln -s "$PWD/node_modules" "$old/node_modules"
(cd "$old" && npx buf build -o "$old/before.binpb")
# Image against image: buf's directory input names files differently from a built image.
npx buf build -o "$old/after.binpb"
npx buf breaking "$old/after.binpb" --against "$old/before.binpb"
echo "buf breaking: no breaking change against $ref"
