#!/usr/bin/env bash
# Installs the Debian packages cosa-buildd needs on the host: the Docker
# engine, mmdebstrap (to build the cosa-lite image without a registry), and
# the tools the tests use to check artifacts independently (ostree, qemu-img,
# sfdisk, debugfs, fsck.vfat, qemu to boot the bootable example, promtool from
# prometheus to check the metrics, chromium for the dashboard's browser tests),
# and the checkers of the deploy files (shellcheck, docker-compose; systemd for
# systemd-analyze verify, which needs no running systemd), and PostgreSQL 15
# for the database tests (test/postgres-server.ts starts a server of its own
# per test file; the cluster the package creates is stopped and never
# started again). Only what is missing is installed. On a host that is not arm64, it also registers qemu-user's
# aarch64 handler with binfmt_misc so that the arm64 cosa-lite image runs
# under emulation (docs/cosa-lite.md#arm64); running it again changes nothing.
set -euo pipefail
packages=(docker.io mmdebstrap debian-archive-keyring ostree qemu-utils qemu-system-x86 fdisk e2fsprogs dosfstools mtools git curl jq ca-certificates
  prometheus chromium shellcheck systemd docker-compose postgresql)
# The arm64 cosa-lite image: qemu-aarch64 for binfmt_misc, arch-test to prove it.
packages+=(qemu-user-static binfmt-support arch-test)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}" >&2
    echo "install them as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts the cluster it creates with the package; the tests start their own.
  if [[ " ${missing[*]} " == *" postgresql "* ]] && command -v pg_ctlcluster >/dev/null; then
    for cluster in $(pg_lsclusters -h 2>/dev/null | awk '{print $1 "/" $2}'); do
      pg_ctlcluster "${cluster%/*}" "${cluster#*/}" stop 2>/dev/null || true
      echo manual > "/etc/postgresql/${cluster%/*}/${cluster#*/}/start.conf"
    done
  fi
fi

# The F (fix-binary) flag makes the kernel open qemu-aarch64-static when the
# handler is registered, so it runs inside containers whose filesystem lacks
# it. Without systemd nothing mounts binfmt_misc or registers the handlers
# that binfmt-support imported, so this does both.
binfmt=/proc/sys/fs/binfmt_misc
handler=$binfmt/qemu-aarch64
fixed() { [ -e "$handler" ] && grep -q '^flags:.*F' "$handler"; }
[ "$(dpkg --print-architecture)" = arm64 ] && exit 0
fixed && arch-test arm64 >/dev/null && exit 0
if [ "$(id -u)" -ne 0 ]; then
  # Only the arm64 image needs it: the rest of the project works without.
  echo "note: qemu-aarch64 is not registered with binfmt_misc (flag F); for the arm64 cosa-lite image run this script as root" >&2
  exit 0
fi
[ -e "$binfmt/status" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
# A handler registered without F (by hand, or by another tool) is replaced.
if [ -e "$handler" ] && ! fixed; then echo -1 > "$handler"; fi
[ -e "$handler" ] || update-binfmts --enable qemu-aarch64
if ! fixed || ! arch-test arm64 >/dev/null; then
  echo "arm64 emulation does not work: $(arch-test arm64 2>&1); $(cat "$handler" 2>&1)" >&2
  exit 1
fi
echo "qemu-aarch64 registered with binfmt_misc: $(grep '^flags' "$handler")" >&2
