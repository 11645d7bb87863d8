# The cosa-buildd service image. It needs the host's Docker engine (socket
# mounted) to run builds, and its data directory must be mounted at the same
# path inside and outside the container: build containers are created by the
# engine, which resolves their bind mounts on the host.
#
#   docker build -t cosa-buildd .
#   docker run -d --name cosa-buildd -p 8080:8080 \
#     -v /var/run/docker.sock:/var/run/docker.sock \
#     -v /var/lib/cosa-buildd:/var/lib/cosa-buildd \
#     -e COSA_BUILDD_HOST=0.0.0.0 -e COSA_BUILDD_ADMIN_TOKENS=... \
#     -e COSA_BUILDD_SUBMIT_TOKENS=... -e COSA_BUILDD_READ_TOKENS=... cosa-buildd
#
# The base image brings Node.js 24 (package.json engines); scripts/ensure-node.sh
# is for hosts, and pins the exact version the tests ran on.
FROM node:24-bookworm-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates openssh-client \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
ENV NODE_ENV=production COSA_BUILDD_DATA_DIR=/var/lib/cosa-buildd
EXPOSE 8080
# The service is PID 1's child under tini (--init) and shuts down on SIGTERM,
# leaving running builds to the next start.
ENTRYPOINT ["node", "dist/server.js"]
