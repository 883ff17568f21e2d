# syntax=docker/dockerfile:1
# finance-news-mcp: build with the dev dependencies, run with the production ones only.
# Node 24 is the current LTS line (Node 20 reached its end of life in April 2026).
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json app.ts ./
COPY lib ./lib
COPY plugins ./plugins
COPY routes ./routes
COPY tools ./tools
COPY prompts ./prompts
COPY resources ./resources
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    LOG_LEVEL=info
WORKDIR /app
# Owned by root, read-only for the user the server runs as.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The symbol list behind completions and company-name lookup (lib/news/symbols.ts).
COPY data/symbols.csv ./data/symbols.csv
USER node
EXPOSE 10000
# Liveness only: /ready (signing keys, Redis) is for the orchestrator's readiness probe.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||10000)+'/health').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# fastify-cli's start: SIGTERM closes the server, lets in-flight requests and
# streams finish, and exits within the grace delay (keep the orchestrator's
# termination grace period longer than it).
CMD ["node", "node_modules/fastify-cli/cli.js", "start", "-a", "0.0.0.0", "-p", "10000", "--close-grace-delay", "10000", "--options", "dist/app.js"]
