#!/usr/bin/env bash
# Installs the Debian packages cosa-buildd needs on the host: the Docker
# engine, mmdebstrap (to build the cosa-lite image without a registry), and
# the tools the tests use to check artifacts independently (ostree, qemu-img,
# sfdisk, debugfs, fsck.vfat, qemu to boot the bootable example, promtool from
# prometheus to check the metrics, chromium for the dashboard's browser tests),
# and the checkers of the deploy files (shellcheck, docker-compose; systemd for
# systemd-analyze verify, which needs no running systemd). Only what is missing
# is installed.
set -euo pipefail
packages=(docker.io mmdebstrap debian-archive-keyring ostree qemu-utils qemu-system-x86 fdisk e2fsprogs dosfstools mtools git curl jq ca-certificates
  prometheus chromium shellcheck systemd docker-compose)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]}" >&2
  echo "install them as root: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
