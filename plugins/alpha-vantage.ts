import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { AlphaVantageClient, AlphaVantageError, type AlphaVantageClientOptions, type NewsFeed, type UpstreamFailureKind } from '../lib/news/alpha-vantage.js'
import { MemoryResponseCache, RedisResponseCache, type RedisLink, type ResponseCache } from '../lib/news/cache.js'
import { FallbackQuotaStore, RedisQuotaStore, type QuotaStore } from '../lib/news/quota.js'
import { NewsService } from '../lib/news/service.js'

export interface AlphaVantagePluginOptions extends AlphaVantageClientOptions {
  /** Say at startup that the public demo key is in use. */
  usingDemoKey?: boolean
  /** Answers are fresh this long (default 5 min). */
  cacheTtlMs?: number
  cacheMaxEntries?: number
  cacheMaxBytes?: number
  /** How long past freshness an answer may serve when the upstream fails (default 24 h). */
  staleMaxMs?: number
  /** A shared store in place of the in-memory cache. */
  cache?: ResponseCache<NewsFeed>
  dailyLimit?: number
  retries?: number
  retryBaseMs?: number
  circuitThreshold?: number
  circuitCooldownMs?: number
  /** Share of the daily limit one subject may spend on new questions (default 0.4). */
  subjectShare?: number
  /** Upstream calls per minute (default 5, the free tier's); 0 is unpaced. */
  callsPerMinute?: number
  paceMaxWaitMs?: number
  dailyLimitProbeMs?: number
  /**
   * Shared state (the redis plugin's decorator): the cache, its coalescing,
   * the quota and the pace then hold for every replica. Absent: all in memory.
   */
  redis?: RedisLink
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The raw NEWS_SENTIMENT client (one upstream call per call). */
    alphaVantage: AlphaVantageClient
    /** NEWS_SENTIMENT through the shared cache, coalescing, quota and circuit: what tools use. */
    news: NewsService
  }
}

async function alphaVantagePlugin (fastify: FastifyInstance, opts: AlphaVantagePluginOptions): Promise<void> {
  if (typeof opts.apiKey !== 'string' || opts.apiKey === '') throw new Error('alpha-vantage: "apiKey" is required')
  const client = new AlphaVantageClient(opts)
  const ttlMs = opts.cacheTtlMs ?? 300_000
  const retries = opts.retries ?? 2
  const paceMaxWaitMs = opts.paceMaxWaitMs ?? 30_000
  const retryBaseMs = opts.retryBaseMs ?? 250
  const bounds = {
    maxEntries: opts.cacheMaxEntries ?? 500,
    maxBytes: opts.cacheMaxBytes ?? 32 * 1024 * 1024,
    retentionMs: ttlMs + (opts.staleMaxMs ?? 86_400_000)
  }
  const { redis } = opts
  let cache: ResponseCache<NewsFeed>
  let quotaStore: QuotaStore | undefined
  if (opts.cache !== undefined) {
    cache = opts.cache
  } else if (redis !== undefined) {
    cache = new RedisResponseCache<NewsFeed>({
      redis,
      ...bounds,
      freshMs: ttlMs,
      // Longer than the longest call the holder can make: the pace's queue, every attempt and its backoff.
      lockMs: paceMaxWaitMs + (retries + 1) * (opts.timeoutMs + retryBaseMs * 2 ** retries) + 5000,
      reviveError: failure => new AlphaVantageError(failure.kind as UpstreamFailureKind, failure.message),
      // Shared: what Alpha Vantage answered. Not shared: a caller that used its own share (another
      // caller on another replica may still ask), and anything that is not an upstream answer (a bug).
      isPrivateFailure: err => !(err instanceof AlphaVantageError) || err.subjectShare,
      log: fastify.log
    })
  } else {
    cache = new MemoryResponseCache<NewsFeed>(bounds)
  }
  if (redis !== undefined) {
    quotaStore = new FallbackQuotaStore(new RedisQuotaStore({ redis: redis.client, key: redis.key.bind(redis) }), () => redis.available, fastify.log)
  }
  const news = new NewsService({
    client,
    cache,
    ttlMs,
    dailyLimit: opts.dailyLimit ?? 25,
    subjectShare: opts.subjectShare ?? 0.4,
    callsPerMinute: opts.callsPerMinute === undefined ? 5 : opts.callsPerMinute === 0 ? Number.POSITIVE_INFINITY : opts.callsPerMinute,
    paceMaxWaitMs,
    ...(opts.dailyLimitProbeMs !== undefined ? { dailyLimitProbeMs: opts.dailyLimitProbeMs } : {}),
    ...(quotaStore !== undefined ? { quotaStore } : {}),
    retries,
    retryBaseMs,
    circuitThreshold: opts.circuitThreshold ?? 5,
    circuitCooldownMs: opts.circuitCooldownMs ?? 60_000,
    log: fastify.log
  })
  if (opts.usingDemoKey === true) {
    fastify.log.warn('ALPHA_VANTAGE_API_KEY is not set: using Alpha Vantage\'s public "demo" key, which only serves the documented example (ticker AAPL)')
  }
  fastify.decorate('alphaVantage', client)
  fastify.decorate('news', news)
  fastify.addHook('onClose', async () => { await client.close() })
}

export default fp(alphaVantagePlugin, { name: 'alpha-vantage', fastify: '5.x' })
