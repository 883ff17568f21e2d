import { readFileSync } from 'node:fs'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import config, { type ConfigPluginOptions } from './plugins/config.js'
import cors from './plugins/cors.js'
import gracefulClose from './plugins/graceful-close.js'
import devIssuer from './plugins/dev-issuer.js'
import auth from './plugins/auth.js'
import protectedResourceMetadata from './plugins/protected-resource-metadata.js'
import alphaVantage from './plugins/alpha-vantage.js'
import rateLimit from './plugins/rate-limit.js'
import mcp from './plugins/mcp.js'
import redis from './plugins/redis.js'
import healthRoutes from './routes/health.js'
import newsSentimentTool from './tools/news-sentiment.js'
import marketNewsTool from './tools/market-news.js'
import sentimentTrendTool from './tools/sentiment-trend.js'
import newsMoversTool from './tools/news-movers.js'
import compareNewsSentimentTool from './tools/compare-news-sentiment.js'

// app.ts runs from the project root under tests and as dist/app.js in production.
const projectRoot = new URL('.', import.meta.url).href.replace(/\/dist\/$/, '/')
const pkg = JSON.parse(readFileSync(new URL('package.json', projectRoot), 'utf8')) as { name: string, version: string }

export type AppOptions = ConfigPluginOptions

/** Server options for `fastify start --options`: secrets never reach a log line. */
export const options: FastifyServerOptions = {
  logger: {
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', 'authorization', 'apiKey', 'token'],
      censor: '[redacted]'
    }
  },
  routerOptions: { ignoreTrailingSlash: true },
  // Ids for log correlation; a client-sent id would let callers forge log lines.
  requestIdHeader: false,
  return503OnClosing: true
}

/**
 * The root plugin: config first, then the building blocks with options taken
 * from the config, then routes and tools. No listen(): fastify-cli (or the
 * embedding app) owns the server.
 */
export default async function app (fastify: FastifyInstance, opts: AppOptions): Promise<void> {
  await fastify.register(config, { env: opts.env })
  const { config: cfg } = fastify

  await fastify.register(gracefulClose)

  // Shared state for several replicas; without REDIS_URL everything stays in memory.
  if (cfg.redis !== undefined) await fastify.register(redis, cfg.redis)

  await fastify.register(cors, { origins: cfg.mcp.allowedOrigins })

  let issuers = cfg.auth.issuers
  if (cfg.auth.mode === 'development') {
    const issuer = `${new URL(cfg.resource.resource).origin}/dev-issuer`
    issuers = [issuer]
    await fastify.register(devIssuer, {
      issuer,
      audience: cfg.auth.audiences,
      scopes: cfg.auth.requiredScopes,
      production: cfg.production
    })
  }
  const authorizationServers = cfg.resource.authorizationServers.length > 0 ? cfg.resource.authorizationServers : issuers

  await fastify.register(auth, {
    issuers,
    audiences: cfg.auth.audiences,
    ...(cfg.auth.jwksUri !== undefined ? { jwksUri: cfg.auth.jwksUri } : { jwks: fastify.devIssuer.jwks }),
    requiredScopes: cfg.auth.requiredScopes,
    algorithms: cfg.auth.algorithms,
    clockToleranceSec: cfg.auth.clockToleranceSec,
    jwksTimeoutMs: cfg.auth.jwksTimeoutMs,
    jwksCooldownMs: cfg.auth.jwksCooldownMs,
    jwksRefreshMs: cfg.auth.jwksRefreshMs,
    tokenCacheSize: cfg.auth.tokenCacheSize,
    resourceMetadataUrl: cfg.resource.metadataUrl
  })

  await fastify.register(protectedResourceMetadata, {
    resource: cfg.resource.resource,
    authorizationServers,
    scopesSupported: cfg.resource.scopesSupported,
    resourceName: cfg.resource.resourceName,
    resourceDocumentation: cfg.resource.resourceDocumentation,
    extra: cfg.resource.extra,
    paths: [new URL(cfg.resource.metadataUrl).pathname, '/.well-known/oauth-protected-resource/mcp']
  })

  await fastify.register(alphaVantage, {
    baseUrl: cfg.alphaVantage.baseUrl,
    apiKey: cfg.alphaVantage.apiKey,
    timeoutMs: cfg.alphaVantage.timeoutMs,
    maxConnections: cfg.alphaVantage.maxConnections,
    usingDemoKey: cfg.alphaVantage.usingDemoKey,
    dailyLimit: cfg.alphaVantage.dailyLimit,
    retries: cfg.alphaVantage.retries,
    retryBaseMs: cfg.alphaVantage.retryBaseMs,
    circuitThreshold: cfg.alphaVantage.circuitThreshold,
    circuitCooldownMs: cfg.alphaVantage.circuitCooldownMs,
    cacheTtlMs: cfg.newsCache.ttlMs,
    cacheMaxEntries: cfg.newsCache.maxEntries,
    cacheMaxBytes: cfg.newsCache.maxBytes,
    staleMaxMs: cfg.newsCache.staleMaxMs
  })

  await fastify.register(rateLimit, { max: cfg.mcp.rateLimitMax, timeWindowMs: cfg.mcp.rateLimitWindowMs })

  await fastify.register(mcp, {
    path: '/mcp',
    serverInfo: { name: pkg.name, version: pkg.version, title: 'Finance news sentiment' },
    instructions: 'Financial news with sentiment scores from Alpha Vantage, shared by all users on one daily quota: ' +
      'get_news_sentiment for a ticker (AAPL, BRK.B, CRYPTO:BTC, FOREX:EUR), get_market_news for topics, ' +
      'get_sentiment_trend (is the mood on a ticker improving?), get_news_movers (who moves the news?), compare_news_sentiment (X or Y?). ' +
      'Repeated and narrower questions are answered from a cache.',
    allowedOrigins: cfg.mcp.allowedOrigins,
    sessionIdleTtlMs: cfg.mcp.sessionIdleTtlMs,
    maxSessions: cfg.mcp.maxSessions,
    maxSessionsPerSubject: cfg.mcp.maxSessionsPerSubject,
    stateless: cfg.mcp.stateless,
    bodyLimit: cfg.mcp.bodyLimit
  })

  await fastify.register(healthRoutes)
  await fastify.register(newsSentimentTool)
  await fastify.register(marketNewsTool)
  await fastify.register(sentimentTrendTool)
  await fastify.register(newsMoversTool)
  await fastify.register(compareNewsSentimentTool)
}
