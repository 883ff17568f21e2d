import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { overloadChannel } from '../lib/observability/channels.js'

export interface OverloadOptions {
  /** Mean event loop delay (ms) over which requests are refused; 0 is off. */
  maxEventLoopDelayMs?: number
  /** Event loop utilization (0–1) over which requests are refused; 0 is off. */
  maxEventLoopUtilization?: number
  maxHeapUsedBytes?: number
  maxRssBytes?: number
  /** Sent as Retry-After with every 503. */
  retryAfterSec?: number
  /** Routes always served: liveness (a busy process is alive; restarting it would make things worse) and metrics (watch the overload). */
  exemptRoutes?: string[]
  /** How often the figures are sampled (ms). */
  sampleIntervalMs?: number
}

/**
 * Refuses work before the process collapses: when the event loop lags or
 * memory runs out, new requests get 503 with Retry-After at once (a cheap
 * answer) instead of queueing behind the work already accepted, so latency
 * stays bounded and the process recovers by itself.
 *
 * Why @fastify/under-pressure: it samples the event loop delay with
 * perf_hooks' histogram and memory on one timer, and its onRequest check is a
 * few comparisons, which is what a hand-written one would be, minus its tests.
 */
async function overloadPlugin (fastify: FastifyInstance, opts: OverloadOptions): Promise<void> {
  const retryAfter = opts.retryAfterSec ?? 10
  const exempt = new Set(opts.exemptRoutes ?? ['/health', '/metrics'])
  // One warning per Retry-After period: a line per refusal would add to the overload.
  let warnedAt = 0
  await fastify.register(underPressure, {
    maxEventLoopDelay: opts.maxEventLoopDelayMs ?? 1000,
    maxEventLoopUtilization: opts.maxEventLoopUtilization ?? 0,
    maxHeapUsedBytes: opts.maxHeapUsedBytes ?? 0,
    maxRssBytes: opts.maxRssBytes ?? 0,
    sampleInterval: opts.sampleIntervalMs ?? 1000,
    retryAfter,
    // A returned value is sent as the answer (under-pressure's handlePressure); its types say void.
    pressureHandler: function refuse (request: FastifyRequest, reply: FastifyReply, type: string) {
      if (request.routeOptions.url !== undefined && exempt.has(request.routeOptions.url)) return undefined
      if (overloadChannel.hasSubscribers) overloadChannel.publish({ reason: type })
      if (Date.now() - warnedAt >= retryAfter * 1000) {
        warnedAt = Date.now()
        request.log.warn({ overload: type }, 'requests refused with 503: server overloaded')
      }
      reply.code(503).header('retry-after', String(retryAfter))
      // The MCP shape (a JSON-RPC error) for MCP clients; every client reads the status and Retry-After.
      return { jsonrpc: '2.0', id: null, error: { code: -32000, message: `Service Unavailable: the server is overloaded (${type}); retry in ${retryAfter} s` } }
    } as unknown as (request: FastifyRequest, reply: FastifyReply, type: string) => void
  })
}

export default fp(overloadPlugin, { name: 'overload', fastify: '5.x' })
