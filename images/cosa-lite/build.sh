#!/usr/bin/env bash
# Builds the cosa-lite image from Debian packages only: mmdebstrap a rootfs,
# append the cosa-lite scripts, `docker load` it. No image registry is used.
#
#   bash images/cosa-lite/build.sh [--arch ARCH]   # or COSA_LITE_ARCH=ARCH
#
# ARCH is a Debian architecture (amd64, arm64; default: the host's). amd64 is
# tagged cosa-lite:<hash> and cosa-lite:latest, any other arch
# cosa-lite:<hash>-ARCH and cosa-lite:latest-ARCH. A foreign arch runs under
# qemu-user emulation (scripts/setup-host.sh registers it).
#
# The tag is a hash of every input, so an unchanged tree never rebuilds; the
# base rootfs tarball is cached by the hash of the arch and packages.txt alone,
# so editing a script only re-imports (seconds) instead of re-bootstrapping
# (minutes).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
suite=${COSA_LITE_SUITE:-bookworm}
mirror=${COSA_LITE_MIRROR:-http://deb.debian.org/debian}
cache=${COSA_LITE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cosa-buildd}
repo=${COSA_LITE_REPO:-cosa-lite}
arch=${COSA_LITE_ARCH:-$(dpkg --print-architecture)}
schema="$here/../../src/cosa/meta.schema.json"

while [ $# -gt 0 ]; do
  case $1 in
    --arch) arch=${2:?--arch needs a Debian architecture, e.g. arm64}; shift 2 ;;
    --arch=*) arch=${1#--arch=}; shift ;;
    *) echo "usage: build.sh [--arch ARCH]" >&2; exit 2 ;;
  esac
done
# cosa's names for the same thing, for whoever thinks in basearch.
case $arch in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; esac
suffix=$([ "$arch" = amd64 ] || echo "-$arch")

# packages.txt: one package a line, optionally restricted to arches as in
# Debian's dependency syntax: `qemu-system-x86 [amd64]`.
packages=$(awk -v arch="$arch" '{ sub(/#.*/, "") } NF == 1 { print $1 }
  NF > 1 { gsub(/[][]/, ""); for (i = 2; i <= NF; i++) if ($i == arch) print $1 }' "$here/packages.txt" | xargs)
base_hash=$( (echo "$suite $mirror $arch"; echo "$packages") | sha256sum | cut -c1-16)
input_hash=$( (echo "$base_hash"; cd "$here" && find scripts lib -type f -print0 | sort -z | xargs -0 sha256sum; sha256sum < "$schema") | sha256sum | cut -c1-16)
tag="$repo:$input_hash$suffix"
latest="$repo:latest$suffix"

if docker image inspect "$tag" >/dev/null 2>&1; then
  docker tag "$tag" "$latest"
  echo "$tag (up to date)"
  exit 0
fi

mkdir -p "$cache"
base="$cache/cosa-lite-base-$base_hash.tar"
if [ ! -s "$base" ]; then
  command -v mmdebstrap >/dev/null || { echo "mmdebstrap is missing: apt-get install mmdebstrap" >&2; exit 1; }
  if ! arch-test "$arch" >/dev/null 2>&1; then
    echo "this host cannot run $arch binaries: run scripts/setup-host.sh as root (qemu-user-static, binfmt_misc)" >&2
    exit 1
  fi
  echo "bootstrapping the $suite $arch rootfs (cached as $base)" >&2
  # --mode=root: CI runs as root; unshare mode needs subuid ranges we do not own.
  mmdebstrap --mode=root --variant=minbase --format=tar --architectures="$arch" \
    --include="$(echo "$packages" | tr ' ' ,)" \
    --customize-hook='rm -rf "$1"/usr/share/doc/* "$1"/usr/share/man/* "$1"/usr/share/locale/*' \
    "$suite" "$base.tmp" "$mirror" >&2
  mv "$base.tmp" "$base"
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
install -d "$root/usr/lib/coreos-assembler" "$root/usr/bin" "$stage/image"
install -m 0755 "$here"/scripts/* "$root/usr/lib/coreos-assembler/"
install -m 0644 "$here"/lib/* "$root/usr/lib/coreos-assembler/"
install -m 0644 "$schema" "$root/usr/lib/coreos-assembler/v1.json"
mv "$root/usr/lib/coreos-assembler/coreos-assembler" "$root/usr/bin/coreos-assembler"
ln -s coreos-assembler "$root/usr/bin/cosa"
echo "$input_hash" > "$root/usr/lib/coreos-assembler/image-version"

layer="$stage/image/layer.tar"
cp "$base" "$layer"
tar -C "$root" --owner=0 --group=0 --numeric-owner -rf "$layer" \
  ./usr/lib/coreos-assembler ./usr/bin/coreos-assembler ./usr/bin/cosa
# A docker-save archive rather than `docker import`: import records the
# engine's architecture whatever the rootfs holds (its --platform needs an
# experimental daemon before Docker 25), and engines and people read the
# image's architecture to know where it runs.
jq -n --arg arch "$arch" --arg version "$input_hash" --arg diff "sha256:$(sha256sum < "$layer" | cut -d' ' -f1)" \
  --arg created "$(date -u +%Y-%m-%dT%H:%M:%SZ)" '{
  architecture: $arch, os: "linux", created: $created,
  config: {
    Entrypoint: ["/usr/bin/dumb-init", "/usr/bin/coreos-assembler"],
    WorkingDir: "/srv",
    Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
          "PYTHONUNBUFFERED=1", "COSA_LITE_VERSION=\($version)"],
    Labels: {"org.opencontainers.image.title": "cosa-lite", "org.opencontainers.image.version": $version}
  },
  rootfs: {type: "layers", diff_ids: [$diff]},
  history: [{created: $created, created_by: "images/cosa-lite/build.sh --arch \($arch)"}]
}' > "$stage/image/config.json"
jq -n --arg tag "$tag" '[{Config: "config.json", RepoTags: [$tag], Layers: ["layer.tar"]}]' > "$stage/image/manifest.json"
tar -C "$stage/image" -cf - manifest.json config.json layer.tar | docker load -q >/dev/null
docker tag "$tag" "$latest"
echo "$tag"
