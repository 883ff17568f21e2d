import { readFileSync } from 'node:fs'
import type { Server } from 'node:http'
import type { FastifyHttpOptions, FastifyInstance } from 'fastify'
import config, { logLevelFrom, serverTimeouts, type ConfigPluginOptions, type AppConfig } from './plugins/config.js'
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
import docsRoutes from './routes/docs.js'
import metrics from './plugins/metrics.js'
import overload from './plugins/overload.js'
import { RequestLogController, requestSerializer } from './lib/observability/request-log.js'
import type { SpanExporter } from '@opentelemetry/sdk-trace-node'
import newsSentimentTool from './tools/news-sentiment.js'
import marketNewsTool from './tools/market-news.js'
import sentimentTrendTool from './tools/sentiment-trend.js'
import newsMoversTool from './tools/news-movers.js'
import compareNewsSentimentTool from './tools/compare-news-sentiment.js'
import sentimentBriefPrompt from './prompts/sentiment-brief.js'
import compareSentimentPrompt from './prompts/compare-sentiment.js'
import methodologyResource from './resources/methodology.js'
import topicsResource from './resources/topics.js'
import newsSentimentResource from './resources/news-sentiment.js'

// app.ts runs from the project root under tests and as dist/app.js in production.
const projectRoot = new URL('.', import.meta.url).href.replace(/\/dist\/$/, '/')
const pkg = JSON.parse(readFileSync(new URL('package.json', projectRoot), 'utf8')) as { name: string, version: string }

export type AppOptions = ConfigPluginOptions & {
  /** Where spans go instead of the OTLP exporter (tests pass an in-memory one); tracing still needs OTEL_EXPORTER_OTLP_ENDPOINT. */
  spanExporter?: SpanExporter
}

const serverInfo = { name: pkg.name, version: pkg.version, title: 'Finance news sentiment' }

/**
 * A bounded time for a client to send its request: Fastify's default is no
 * limit (a POST declaring 100,000 bytes and sending 10 stayed open for good).
 */
export function timeoutOptions (timeouts: AppConfig['http']): FastifyHttpOptions<Server> {
  return {
    requestTimeout: timeouts.requestTimeoutMs,
    http: {
      requestTimeout: timeouts.requestTimeoutMs,
      headersTimeout: timeouts.headersTimeoutMs,
      // Node looks for expired requests on this period; its default (30 s) would let a 30 s timeout run to 60 s.
      connectionsCheckingInterval: 1000
    }
  }
}

/**
 * Server options for `fastify start --options`: secrets never reach a log
 * line; requests are timed. fastify-cli creates the server from these before
 * any plugin runs, so the timeouts cannot come from the config plugin: they
 * are read here, from the environment, by the config module's
 * `serverTimeouts` (REQUEST_TIMEOUT_MS, default 30000; HEADERS_TIMEOUT_MS,
 * default 10000), the one place that parses them.
 */
export const options: FastifyHttpOptions<Server> = {
  logger: {
    // LOG_LEVEL or FASTIFY_LOG_LEVEL (default info): these options override fastify-cli's -l.
    level: logLevelFrom(process.env),
    // URLs without their query string: a token sent as ?access_token= never reaches a log line.
    serializers: { req: requestSerializer },
    redact: {
      paths: ['req.headers.authorization', 'headers.authorization', 'authorization', 'apiKey', 'token'],
      censor: '[redacted]'
    }
  },
  routerOptions: { ignoreTrailingSlash: true },
  // Ids for log correlation; a client-sent id would let callers forge log lines.
  requestIdHeader: false,
  // One line per request, at completion; probes at debug.
  logController: new RequestLogController(),
  return503OnClosing: true,
  ...timeoutOptions(serverTimeouts(process.env))
}

/**
 * The root plugin: config first, then the building blocks with options taken
 * from the config, then routes, tools, prompts and resources. No listen(): fastify-cli (or the
 * embedding app) owns the server.
 */
export default async function app (fastify: FastifyInstance, opts: AppOptions): Promise<void> {
  await fastify.register(config, { env: opts.env })
  const { config: cfg } = fastify

  // First, so that every route and hook registered after it is traced.
  if (cfg.tracing !== undefined) {
    // Loaded only when on: the OpenTelemetry SDK costs most of a second of CPU to import.
    const { default: tracing } = await import('./plugins/tracing.js')
    await fastify.register(tracing, { serviceName: cfg.tracing.serviceName, endpoint: cfg.tracing.endpoint, exporter: opts.spanExporter })
  }
  if (cfg.metrics !== undefined) await fastify.register(metrics, cfg.metrics)

  await fastify.register(gracefulClose)
  await fastify.register(overload, {
    maxEventLoopDelayMs: cfg.overload.maxEventLoopDelayMs,
    maxEventLoopUtilization: cfg.overload.maxEventLoopUtilization,
    maxHeapUsedBytes: cfg.overload.maxHeapUsedBytes,
    maxRssBytes: cfg.overload.maxRssBytes,
    retryAfterSec: cfg.overload.retryAfterSec
  })

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
      production: cfg.production,
      allowNonLoopback: cfg.auth.devIssuerForced
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
    // The page at /docs (routes/docs.ts) unless the operator points elsewhere.
    resourceDocumentation: cfg.resource.resourceDocumentation ?? `${new URL(cfg.resource.resource).origin}/docs`,
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
    subjectShare: cfg.alphaVantage.subjectShare,
    callsPerMinute: cfg.alphaVantage.callsPerMinute,
    paceMaxWaitMs: cfg.alphaVantage.paceMaxWaitMs,
    dailyLimitProbeMs: cfg.alphaVantage.dailyLimitProbeMs,
    // With REDIS_URL: the cache, its coalescing, the quota and the pace shared by every replica.
    ...(cfg.redis !== undefined ? { redis: fastify.redis } : {}),
    cacheTtlMs: cfg.newsCache.ttlMs,
    cacheMaxEntries: cfg.newsCache.maxEntries,
    cacheMaxBytes: cfg.newsCache.maxBytes,
    staleMaxMs: cfg.newsCache.staleMaxMs
  })

  await fastify.register(rateLimit, {
    max: cfg.mcp.rateLimitMax,
    timeWindowMs: cfg.mcp.rateLimitWindowMs,
    ...(cfg.redis !== undefined && { redis: fastify.redis.client, nameSpace: fastify.redis.key('rate-limit:') })
  })

  await fastify.register(mcp, {
    path: '/mcp',
    serverInfo,
    instructions: 'Financial news with sentiment scores from Alpha Vantage, shared by all users on one daily quota: ' +
      'get_news_sentiment for a ticker (AAPL, BRK.B, CRYPTO:BTC, FOREX:EUR), get_market_news for topics, ' +
      'get_sentiment_trend (is the mood on a ticker improving?), get_news_movers (who moves the news?), compare_news_sentiment (X or Y?). ' +
      'Repeated and narrower questions are answered from a cache. ' +
      'Prompts: sentiment_brief, compare_sentiment. Resources: news://methodology (how scores and labels are computed), news://topics, ' +
      'news://sentiment/{ticker} (a ticker\'s latest sentiment from the same cache, subscribable).',
    allowedOrigins: cfg.mcp.allowedOrigins,
    sessionIdleTtlMs: cfg.mcp.sessionIdleTtlMs,
    maxSessions: cfg.mcp.maxSessions,
    maxSessionsPerSubject: cfg.mcp.maxSessionsPerSubject,
    stateless: cfg.mcp.stateless,
    bodyLimit: cfg.mcp.bodyLimit,
    maxBatch: cfg.mcp.maxBatch,
    maxBatchAnswerBytes: cfg.mcp.maxBatchAnswerBytes,
    chargeRateLimit: fastify.chargeRateLimit,
    ...(cfg.redis !== undefined && { redis: fastify.redis })
  })

  await fastify.register(healthRoutes)
  await fastify.register(docsRoutes, { serverInfo, metadataUrl: cfg.resource.metadataUrl })
  await fastify.register(newsSentimentTool)
  await fastify.register(marketNewsTool)
  await fastify.register(sentimentTrendTool)
  await fastify.register(newsMoversTool)
  await fastify.register(compareNewsSentimentTool)
  await fastify.register(sentimentBriefPrompt)
  await fastify.register(compareSentimentPrompt)
  await fastify.register(methodologyResource)
  await fastify.register(topicsResource)
  await fastify.register(newsSentimentResource)
}
