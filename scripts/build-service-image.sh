#!/usr/bin/env bash
# Builds the service image from the real Dockerfile with no image registry
# and no network inside the build: the bases come from
# images/node-base/build.sh (Debian packages and the npm registry), the npm
# dependencies from a cache filled here, on the host, for the lockfile.
#
#   bash scripts/build-service-image.sh [TAG]     # default cosa-buildd:latest
#
# Where node:24-bookworm(-slim) and the npm registry are reachable from
# builds, a plain `docker build -t cosa-buildd .` does the same.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-cosa-buildd:latest}
bases=$(bash images/node-base/build.sh)
base=$(sed -n 's/^BASE=//p' <<<"$bases")
build_base=$(sed -n 's/^BUILD_BASE=//p' <<<"$bases")

# The Dockerfile copies .tools/npm-cache into its build stage when present.
cache=.tools/npm-cache
lock_hash=$(sha256sum package-lock.json | cut -c1-16)
if [ "$(cat "$cache/lockfile" 2>/dev/null)" != "$lock_hash" ]; then
  echo "filling $cache for package-lock.json" >&2
  source scripts/ensure-node.sh
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  cp package.json package-lock.json .npmrc "$tmp/"
  (cd "$tmp" && npm ci --cache "$OLDPWD/$cache" --ignore-scripts --no-audit --no-fund >/dev/null)
  echo "$lock_hash" > "$cache/lockfile"
fi

docker build --network=none --build-arg "BASE=$base" --build-arg "BUILD_BASE=$build_base" -t "$tag" . >&2
echo "$tag"
