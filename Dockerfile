# The cosa-buildd service image; deploy/README.md says how to run it (Docker
# socket, data directory at the same path inside and out, tokens, --init).
#
#   docker build -t cosa-buildd .
#
# Without an image registry, and with no network inside the build,
# scripts/build-service-image.sh builds both bases from Debian packages and
# the npm registry (images/node-base/build.sh), fills an npm cache for the
# lockfile, then runs
#
#   docker build --network=none --build-arg BASE=cosa-buildd-node:runtime-<hash> \
#     --build-arg BUILD_BASE=cosa-buildd-node:build-<hash> -t cosa-buildd .
#
# Both bases bring Node.js 24 (package.json engines) in /usr/local and a
# `node` user with uid 1000.
ARG BASE=node:24-bookworm-slim
ARG BUILD_BASE=node:24-bookworm

# node:24-bookworm (not -slim) carries python3, make and g++ for better-sqlite3.
FROM ${BUILD_BASE} AS build
WORKDIR /app
# better-sqlite3 is compiled here against this node's own headers: neither
# prebuilt binaries nor headers are downloaded. Install scripts run for it
# alone; ssh2's optional native crypto has a JavaScript fallback.
COPY package.json package-lock.json .npmrc ./
# An npm cache in the context (.tools/npm-cache, which
# scripts/build-service-image.sh fills) lets this build run with no network;
# the wildcard copies nothing when there is none, and npm uses the registry.
COPY .npmrc .tools/npm-cache* /tmp/npm-cache/
RUN npm ci --cache /tmp/npm-cache --prefer-offline --no-audit --no-fund --ignore-scripts \
    && npm_config_build_from_source=true npm_config_nodedir=/usr/local npm rebuild better-sqlite3 \
    && rm -rf /tmp/npm-cache
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# The dashboard's browser code, bundled by esbuild into dist/dashboard.
COPY web ./web
COPY scripts/build-dashboard.ts ./scripts/
RUN npm run build && npm prune --omit=dev --ignore-scripts
# better-sqlite3 needs its compiled module alone, not the 26 MB of SQLite
# sources and object files it was built from.
RUN cd node_modules/better-sqlite3 && mv build/Release/better_sqlite3.node /tmp/ \
    && rm -rf build deps src && mkdir -p build/Release && mv /tmp/better_sqlite3.node build/Release/

FROM ${BASE}
# git fetches config repositories. The slim public base lacks these packages;
# the local base has them and needs no network here.
RUN missing=; for p in git ca-certificates openssh-client; do \
      dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"; \
    done; \
    if [ -n "$missing" ]; then \
      apt-get update && apt-get install -y --no-install-recommends $missing && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
ENV NODE_ENV=production COSA_BUILDD_HOST=0.0.0.0 COSA_BUILDD_DATA_DIR=/var/lib/cosa-buildd
# Not root: the Docker socket's group is added at run time (--group-add).
# uid 1000 is also real cosa's `builder`, so workdirs need no chown.
USER node
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.COSA_BUILDD_PORT || 8080}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Run with --init: tini reaps git's children. SIGTERM finishes in-flight
# requests and leaves running builds to the next start.
ENTRYPOINT ["node", "dist/server.js"]
