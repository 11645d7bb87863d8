#!/usr/bin/env bash
# Copies the screenshots the browser test wrote (.screenshots/, git-ignored)
# into docs/dashboard/, which docs/dashboard.md shows. Run after
# `npx tap test/http/dashboard.test.ts`, and commit what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
shopt -s nullglob
shots=(.screenshots/*.png)
if [ ${#shots[@]} -eq 0 ]; then
  echo "no screenshots in .screenshots/: run npx tap test/http/dashboard.test.ts first" >&2
  exit 1
fi
mkdir -p docs/dashboard
cp "${shots[@]}" docs/dashboard/
echo "copied ${#shots[@]} screenshots to docs/dashboard/"
