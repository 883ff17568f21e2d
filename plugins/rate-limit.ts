import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { rateLimitedChannel } from '../lib/observability/channels.js'

export interface RateLimitOptions {
  /** Requests per subject per window on the protected paths; 0 turns limiting off. */
  max: number
  timeWindowMs: number
  /** Path prefixes limited per subject (default `/mcp`). Other routes are not limited. */
  prefixes?: string[]
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
  if (opts.max === 0) return
  const prefixes = opts.prefixes ?? ['/mcp']
  const limited = (request: FastifyRequest): boolean => prefixes.some(p => request.url.startsWith(p))

  await fastify.register(rateLimit, {
    global: true,
    hook: 'preParsing',
    max: opts.max,
    timeWindow: opts.timeWindowMs,
    cache: 10_000,
    allowList: (request) => !limited(request) || request.method === 'OPTIONS',
    keyGenerator: (request) => request.auth?.subject !== undefined ? `sub:${request.auth.subject}` : `ip:${request.ip}`,
    errorResponseBuilder: (request, context) => {
      if (rateLimitedChannel.hasSubscribers) rateLimitedChannel.publish({ route: String(request.routeOptions.url) })
      const error = new Error(`Too Many Requests: the limit is ${context.max} requests per ${opts.timeWindowMs / 1000} s for each caller; retry in ${context.after}`) as Error & { statusCode: number, code: string }
      error.statusCode = 429
      error.code = 'FST_MCP_RATE_LIMITED'
      return error
    }
  })
}

export default fp(rateLimitPlugin, { name: 'rate-limit', fastify: '5.x' })
