#!/usr/bin/env bash
# The main job on the embedded defaults, from a fresh clone: install what is
# missing (Node.js 24 too), make sure a Docker engine runs, build the cosa-lite
# image, start the server, register the bundled example stream, submit a
# build, follow its log and print the result. The server keeps running
# afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
port=${COSA_BUILDD_PORT:-8080}
data=${COSA_BUILDD_DATA_DIR:-$root/data}
api="http://127.0.0.1:$port"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "host packages and Docker engine"
bash scripts/setup-host.sh
bash scripts/ensure-docker.sh
say "Node.js and npm dependencies"
source scripts/ensure-node.sh
echo "node $(node --version) ($(command -v node))"
# Also when node_modules was built for another Node: better-sqlite3 would not load.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
  || ! node -e 'new (require("better-sqlite3"))(":memory:")' 2>/dev/null; then
  npm ci --no-audit --no-fund
fi
say "cosa-lite builder image"
npm run --silent image:cosa-lite

# cosa init clones a git repository: keep one with the bundled example.
example="$data/examples/minimal"
mkdir -p "$example"
copy_example() { (cd examples/minimal && tar -cf - .) | (cd "$example" && tar -xf -); }
if [ ! -d "$example/.git" ]; then git -C "$example" init -q --initial-branch=main; fi
copy_example
git -C "$example" add -A
git -C "$example" -c user.name=cosa-buildd -c user.email=demo@cosa-buildd.invalid commit -qm "examples/minimal" || true

say "server on $api (data in $data)"
if curl -fsS "$api/healthz" >/dev/null 2>&1; then
  echo "a server already answers on port $port; using it"
else
  mkdir -p "$data"
  COSA_BUILDD_PORT=$port COSA_BUILDD_DATA_DIR=$data nohup node --import tsx src/server.ts >"$data/server.log" 2>&1 &
  echo $! >"$data/server.pid"
  for _ in $(seq 1 50); do curl -fsS "$api/healthz" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fsS "$api/readyz" || { echo; echo "the server did not become ready; see $data/server.log" >&2; exit 1; }
  echo
  echo "started (pid $(cat "$data/server.pid"); stop it with: kill \$(cat $data/server.pid))"
fi

say "register the example stream"
curl -fsS -X PUT "$api/v1/streams/minimal" -H 'content-type: application/json' \
  -d "{\"config\":{\"url\":\"file://$example\",\"ref\":\"main\"}}" >/dev/null
echo "PUT /v1/streams/minimal -> file://$example (main)"

say "submit a build"
build=$(curl -fsS -X POST "$api/v1/streams/minimal/builds" -H 'content-type: application/json' -d '{}')
id=$(node -e 'console.log(JSON.parse(process.argv[1]).id)' "$build")
echo "POST /v1/streams/minimal/builds -> build $id"

say "log of build $id (following)"
curl -fsS -N "$api/v1/builds/$id/log?follow=true"

say "result"
# shellcheck disable=SC2016 # the $ are JavaScript's
curl -fsS "$api/v1/builds/$id" | node -e '
  let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
    const b = JSON.parse(s)
    console.log(`state:        ${b.state}${b.reason ? ` (${b.reason}: ${b.message})` : ""}`)
    console.log(`config:       ${b.configCommit ?? "-"}`)
    if (b.result) {
      console.log(`cosa build:   ${b.result.cosaBuildId} (${b.result.arch})`)
      console.log(`ostree:       ${b.result.ostreeCommit}`)
      for (const a of b.result.artifacts) {
        console.log(`artifact:     ${a.name.padEnd(7)} ${a.size} bytes, sha256 ${a.sha256.slice(0, 12)}…`)
        console.log(`              ${process.argv[1]}${a.url ?? ""}`)
      }
    }
    process.exitCode = ["succeeded", "unchanged"].includes(b.state) ? 0 : 1
  })' "$api"
echo
echo "API docs: $api/docs   OpenAPI: $api/openapi.json"
