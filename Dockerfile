# edgepush: multi-stage build; the runtime image holds only production dependencies and dist/.

FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json tsconfig.client.json ./
COPY src ./src
COPY transports ./transports
COPY public ./public
# npm ci runs the prepare script: TypeScript into dist/, and the browser client into public/.
RUN npm ci

FROM node:24-bookworm-slim
ENV NODE_ENV=production
# tini as PID 1: it hands signals to node (which drains on SIGTERM) and reaps any process left
# behind, such as a --workers child whose primary died.
RUN apt-get update && apt-get install -y --no-install-recommends tini && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: prepare (the TypeScript build) needs dev dependencies; dist/ comes from the build stage.
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY --from=build /app/public ./public
USER node
EXPOSE 8080
# The same options as the server (EDGEPUSH_PORT, a config file): the check follows the configured
# port. Options given as `docker run … --port N` arguments are not visible to it: use EDGEPUSH_PORT.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "dist/src/cli.js", "healthcheck"]
# SIGTERM (docker stop, a pod's termination) drains for up to drainTimeout (30 s by default):
# give docker stop a longer timeout (docker stop -t 40, or --stop-timeout on docker run).
# --max-semi-space-size=8 (MB): the same as the edgepush command's own (see src/cli.ts).
ENTRYPOINT ["tini", "--", "node", "--max-semi-space-size=8", "dist/src/cli.js"]
