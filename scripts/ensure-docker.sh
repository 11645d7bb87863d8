#!/usr/bin/env bash
# Makes sure a Docker engine answers. Uses the one that runs; otherwise, as
# root on a machine without systemd, starts dockerd in the background with no
# default bridge (build containers use network mode none or host).
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null; then
  echo "no Docker engine: install docker.io (bash scripts/setup-host.sh) and start it" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "no Docker engine answers, and starting dockerd needs root: start it, or add yourself to the docker group" >&2
  exit 1
fi
log=${DOCKERD_LOG:-/var/log/cosa-buildd-dockerd.log}
echo "starting dockerd (log: $log)" >&2
setsid dockerd --bridge=none --iptables=false --ip6tables=false --pidfile=/var/run/cosa-buildd-dockerd.pid \
  >"$log" 2>&1 < /dev/null &
for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then exit 0; fi
  sleep 1
done
echo "dockerd did not come up within 60 s; see $log" >&2
tail -n 20 "$log" >&2
exit 1
