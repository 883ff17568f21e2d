import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { AlphaVantageClient, type AlphaVantageClientOptions, type NewsFeed } from '../lib/news/alpha-vantage.js'
import { MemoryResponseCache, type ResponseCache } from '../lib/news/cache.js'
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
  const cache = opts.cache ?? new MemoryResponseCache<NewsFeed>({
    maxEntries: opts.cacheMaxEntries ?? 500,
    maxBytes: opts.cacheMaxBytes ?? 32 * 1024 * 1024,
    retentionMs: ttlMs + (opts.staleMaxMs ?? 86_400_000)
  })
  const news = new NewsService({
    client,
    cache,
    ttlMs,
    dailyLimit: opts.dailyLimit ?? 25,
    retries: opts.retries ?? 2,
    retryBaseMs: opts.retryBaseMs ?? 250,
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
