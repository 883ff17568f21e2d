import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Redis } from 'ioredis'
import { rateLimitedChannel } from '../lib/observability/channels.js'

/** Why a request (or a batch's further messages) may not run now. */
export interface RateLimitRefusal {
  retryAfterSec: number
  message: string
}

declare module 'fastify' {
  interface FastifyInstance {
    /**
     * Counts `count` more requests against the caller's limit, as if they had
     * arrived on their own (a JSON-RPC batch's further messages); resolves to
     * a refusal once the limit is passed. Resolves to undefined when limiting is off.
     */
    chargeRateLimit: (request: FastifyRequest, count: number) => Promise<RateLimitRefusal | undefined>
  }
}

export interface RateLimitOptions {
  /**
   * Requests per subject per window on the protected paths; 0 turns limiting off.
   * @error rate-limit: "max" must be a non-negative integer
   */
  max: number
  /** The window, in milliseconds. */
  timeWindowMs: number
  /**
   * Routes limited per subject, by the prefix of their registered url. Other routes are not limited.
   * @default ['/mcp']
   */
  prefixes?: string[]
  /**
   * Count in this Redis (the library's Redis store, one Lua INCR per request)
   * so that a caller gets its limit once across every replica, not once per
   * replica. Without it, each replica counts in memory.
   */
  redis?: Redis
  /** Key prefix of the counters in Redis. */
  nameSpace?: string
}

/**
 * @fastify/rate-limit, keyed by the token subject on the MCP endpoint, so one
 * agent's flood cannot starve the others (and one subject cannot dodge it by
 * changing IP). It runs after authentication (preParsing): unauthenticated
 * requests are refused by auth first and never reach the counter, and a
 * flooded request is refused before its body is parsed.
 *
 * Why the library: a sliding counter per key with bounded memory (LRU),
 * standard RateLimit/Retry-After headers and a pluggable store (Redis) are
 * what a hand-written limiter would have to reinvent.
 */
async function rateLimitPlugin (fastify: FastifyInstance, opts: RateLimitOptions): Promise<void> {
  if (!Number.isInteger(opts.max) || opts.max < 0) throw new Error('rate-limit: "max" must be a non-negative integer')
  if (opts.max === 0) {
    fastify.decorate('chargeRateLimit', async () => undefined)
    return
  }
  const prefixes = opts.prefixes ?? ['/mcp']
  // Decided on the route the router matched, never on the raw target: the
  // router decodes `/%6Dcp` and takes `POST http://host/mcp` (absolute form,
  // RFC 9112 §3.2.2) to the same route, and neither starts with `/mcp`.
  // The hook runs on routes only (the library adds it in onRoute), so a url is always there.
  const limited = (request: FastifyRequest): boolean => prefixes.some(p => (request.routeOptions.url as string).startsWith(p))

  await fastify.register(rateLimit, {
    global: true,
    hook: 'preParsing',
    max: opts.max,
    timeWindow: opts.timeWindowMs,
    cache: 10_000,
    ...(opts.redis !== undefined && {
      redis: opts.redis,
      nameSpace: opts.nameSpace,
      // Redis down: let requests through unlimited rather than fail them all;
      // the session store answers 503 for what truly needs Redis.
      skipOnError: true
    }),
    allowList: (request) => !limited(request) || request.method === 'OPTIONS',
    // Per principal (issue 8, point 8): a user's limit covers all the clients
    // it uses (a user registering more clients gets no more requests), and a
    // client-credentials client is counted as a client, never as a user of the same name.
    keyGenerator: (request) => request.auth?.principal ?? `ip:${request.ip}`,
    errorResponseBuilder: (request, context) => {
      if (rateLimitedChannel.hasSubscribers) rateLimitedChannel.publish({ route: String(request.routeOptions.url) })
      const error = new Error(`Too Many Requests: the limit is ${context.max} requests per ${opts.timeWindowMs / 1000} s for each caller; retry in ${context.after}`) as Error & { statusCode: number, code: string }
      error.statusCode = 429
      error.code = 'FST_MCP_RATE_LIMITED'
      return error
    }
  })

  // The same store, key and allowList as the hook: a batch's messages land on the caller's own counter.
  const countOne = fastify.createRateLimit()
  fastify.decorate('chargeRateLimit', async function chargeRateLimit (request: FastifyRequest, count: number): Promise<RateLimitRefusal | undefined> {
    for (let i = 0; i < count; i++) {
      const verdict = await countOne(request)
      if (!verdict.isAllowed && verdict.isExceeded) {
        return {
          retryAfterSec: verdict.ttlInSeconds,
          message: `Too Many Requests: each message of a batch counts as a request, and the limit is ${verdict.max} requests per ${opts.timeWindowMs / 1000} s for each caller; retry in ${verdict.ttlInSeconds} s`
        }
      }
    }
    return undefined
  })
}

export default fp(rateLimitPlugin, { name: 'rate-limit', fastify: '5.x' })
