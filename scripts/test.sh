#!/usr/bin/env bash
# The whole test suite: typecheck, then every tap test (real Docker engine,
# real cosa-lite). Ends with a line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
# npm may run this on the host's older node: the suite runs on the project's.
source scripts/ensure-node.sh || { echo "0 passed, 1 failed"; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT

if ! npx tsc --noEmit || ! npx tsc -p web/tsconfig.json; then
  echo "typecheck failed"
  echo "0 passed, 1 failed"
  exit 1
fi
npx tap --reporter=tap "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
summary=$(grep -E '^# \{ total: [0-9]+' "$out" | tail -n 1)
pass=$(sed -nE 's/.*pass: ([0-9]+).*/\1/p' <<<"$summary")
fail=$(sed -nE 's/.*fail: ([0-9]+).*/\1/p' <<<"$summary")
pass=${pass:-0}
fail=${fail:-0}
if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi  # e.g. coverage below the gate
echo "$pass passed, $fail failed"
exit "$rc"
