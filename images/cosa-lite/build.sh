#!/usr/bin/env bash
# Builds the cosa-lite image from Debian packages only: mmdebstrap a rootfs,
# append the cosa-lite scripts, `docker import` it. No image registry is used.
#
# The tag is a hash of every input, so an unchanged tree never rebuilds; the
# base rootfs tarball is cached by the hash of packages.txt alone, so editing a
# script only re-imports (seconds) instead of re-bootstrapping (minutes).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
suite=${COSA_LITE_SUITE:-bookworm}
mirror=${COSA_LITE_MIRROR:-http://deb.debian.org/debian}
cache=${COSA_LITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cosa-buildd}
repo=${COSA_LITE_REPO:-cosa-lite}
schema="$here/../../src/cosa/meta.schema.json"

packages=$(grep -v '^\s*#' "$here/packages.txt" | xargs)
base_hash=$( (echo "$suite $mirror"; echo "$packages") | sha256sum | cut -c1-16)
input_hash=$( (echo "$base_hash"; cd "$here" && find scripts lib -type f -print0 | sort -z | xargs -0 sha256sum; sha256sum < "$schema") | sha256sum | cut -c1-16)
tag="$repo:$input_hash"

if docker image inspect "$tag" >/dev/null 2>&1; then
  docker tag "$tag" "$repo:latest"
  echo "$tag (up to date)"
  exit 0
fi

mkdir -p "$cache"
base="$cache/cosa-lite-base-$base_hash.tar"
if [ ! -s "$base" ]; then
  command -v mmdebstrap >/dev/null || { echo "mmdebstrap is missing: apt-get install mmdebstrap" >&2; exit 1; }
  echo "bootstrapping the $suite rootfs (cached as $base)" >&2
  # --mode=root: CI runs as root; unshare mode needs subuid ranges we do not own.
  mmdebstrap --mode=root --variant=minbase --format=tar \
    --include="$(echo "$packages" | tr ' ' ,)" \
    --customize-hook='rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/locale/*' \
    "$suite" "$base.tmp" "$mirror" >&2
  mv "$base.tmp" "$base"
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
install -d "$stage/usr/lib/coreos-assembler" "$stage/usr/bin"
install -m 0755 "$here"/scripts/* "$stage/usr/lib/coreos-assembler/"
install -m 0644 "$here"/lib/* "$stage/usr/lib/coreos-assembler/"
install -m 0644 "$schema" "$stage/usr/lib/coreos-assembler/v1.json"
mv "$stage/usr/lib/coreos-assembler/coreos-assembler" "$stage/usr/bin/coreos-assembler"
ln -s coreos-assembler "$stage/usr/bin/cosa"
echo "$input_hash" > "$stage/usr/lib/coreos-assembler/image-version"

cp "$base" "$stage.tar"
tar -C "$stage" --owner=0 --group=0 --numeric-owner -rf "$stage.tar" \
  ./usr/lib/coreos-assembler ./usr/bin/coreos-assembler ./usr/bin/cosa
docker import \
  --change 'ENTRYPOINT ["/usr/bin/dumb-init", "/usr/bin/coreos-assembler"]' \
  --change 'WORKDIR /srv' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PYTHONUNBUFFERED=1' \
  --change "ENV COSA_LITE_VERSION=$input_hash" \
  --change "LABEL org.opencontainers.image.title=cosa-lite org.opencontainers.image.version=$input_hash" \
  "$stage.tar" "$tag" >/dev/null
rm -f "$stage.tar"
docker tag "$tag" "$repo:latest"
echo "$tag"
