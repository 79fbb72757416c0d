# One image for both components: `npm run server` or `npm run agent`.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY shared/package.json shared/
COPY server/package.json server/
COPY pdp-agent/package.json pdp-agent/
COPY sdk/package.json sdk/
COPY cli/package.json cli/
COPY source/package.json source/
COPY test/package.json test/
COPY bench/package.json bench/
# `prepare` finds no CLI sources yet and builds nothing; the CLI is built below, once they are here.
COPY cli/build.mjs cli/
RUN npm ci --no-audit --no-fund
COPY shared shared
COPY server server
COPY pdp-agent pdp-agent
COPY sdk sdk
COPY cli cli
COPY source source
COPY test test
COPY scripts scripts
COPY vitest.config.ts ./
RUN npx tsc -p tsconfig.json --noEmit && node cli/build.mjs

FROM node:20-slim
# HOST=0.0.0.0: an agent started from this image then needs AGENT_API_TOKEN (or AGENT_API_INSECURE=true) or it refuses to start.
ENV NODE_ENV=production HOST=0.0.0.0
WORKDIR /app
COPY --from=build --chown=node:node /app /app
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 7002 7766
CMD ["node", "--import", "tsx", "server/src/main.ts"]
