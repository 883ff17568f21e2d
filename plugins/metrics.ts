import fp from 'fastify-plugin'
import { createServer, type Server } from 'node:http'
import { createHash, timingSafeEqual } from 'node:crypto'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { FastifyInstance, FastifyReply, FastifyRequest, onResponseHookHandler } from 'fastify'
import * as channels from '../lib/observability/channels.js'

export interface MetricsPluginOptions {
  /** Serve the metrics on a listener of their own (Prometheus scrapes it; the service's port does not expose them). */
  port?: number
  host?: string
  /** Serve `GET /metrics` on the app's own port, to holders of this bearer token only. */
  token?: string
  /** Process metrics (CPU, memory, event loop lag, GC) besides the server's own (default true). */
  defaultMetrics?: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    metricsRegistry: Registry
  }
}

/** Seconds; MCP answers from cache take a few ms, upstream calls up to the timeout. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

function digest (value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/**
 * Prometheus metrics. Components publish on diagnostics channels
 * (lib/observability/channels.ts); this plugin subscribes and counts, so a
 * component knows nothing of Prometheus and costs nothing when metrics are
 * off. Every label takes its values from a bounded set: routes are URL
 * patterns, methods are mapped to the MCP method list, tools are registered
 * names; no session id, subject or ticker is ever a label value.
 *
 * Not public: either on a port of its own (`port`), or on the app's port
 * behind a bearer token (`token`), compared in constant time.
 */
async function metricsPlugin (fastify: FastifyInstance, opts: MetricsPluginOptions): Promise<void> {
  if (opts.port === undefined && opts.token === undefined) throw new Error('metrics: give "port" or "token": metrics are not served publicly')
  if (opts.token !== undefined && opts.token.length < 16) throw new Error('metrics: "token" must be at least 16 characters')
  const register = new Registry()
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register })

  const httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP requests by method, route pattern and status code',
    labelNames: ['method', 'route', 'status_code'],
    buckets: DURATION_BUCKETS,
    registers: [register]
  })
  const mcpRequests = new Counter({ name: 'mcp_requests_total', help: 'MCP messages answered, by JSON-RPC method and outcome (ok, tool_error, error)', labelNames: ['method', 'outcome'], registers: [register] })
  const toolCalls = new Counter({ name: 'mcp_tool_calls_total', help: 'Tool calls by tool and outcome (ok, tool_error, invalid_arguments, failed)', labelNames: ['tool', 'outcome'], registers: [register] })
  const toolDuration = new Histogram({ name: 'mcp_tool_call_duration_seconds', help: 'Tool call duration by tool', labelNames: ['tool'], buckets: DURATION_BUCKETS, registers: [register] })
  const sessionsOpen = new Gauge({ name: 'mcp_sessions_open', help: 'MCP sessions open in this process', registers: [register] })
  const sessionsClosed = new Counter({ name: 'mcp_sessions_closed_total', help: 'MCP sessions ended, by reason (deleted, expired, evicted, shutdown)', labelNames: ['reason'], registers: [register] })
  const streamsOpen = new Gauge({ name: 'mcp_streams_open', help: 'SSE streams open in this process', registers: [register] })
  const authDecisions = new Counter({ name: 'auth_decisions_total', help: 'Bearer token decisions by outcome and reason', labelNames: ['outcome', 'reason'], registers: [register] })
  const jwksFetches = new Counter({ name: 'auth_jwks_fetches_total', help: 'JWKS fetches by outcome', labelNames: ['outcome'], registers: [register] })
  const jwksKeys = new Gauge({ name: 'auth_jwks_keys', help: 'Signing keys held from the issuer\'s JWKS', registers: [register] })
  const upstreamCalls = new Counter({ name: 'upstream_calls_total', help: 'Alpha Vantage calls by outcome (ok or the failure kind)', labelNames: ['outcome'], registers: [register] })
  const upstreamDuration = new Histogram({ name: 'upstream_call_duration_seconds', help: 'Alpha Vantage call duration', buckets: DURATION_BUCKETS, registers: [register] })
  const quotaUsed = new Gauge({ name: 'upstream_quota_used', help: 'Alpha Vantage calls counted today (UTC) by this process', registers: [register] })
  const quotaRemaining = new Gauge({ name: 'upstream_quota_remaining', help: 'Alpha Vantage calls left today (UTC) for this process', registers: [register] })
  const cacheLookups = new Counter({ name: 'news_cache_lookups_total', help: 'News cache lookups: hit (fresh), miss (not fresh), stale (served past freshness because upstream could not answer; also a miss)', labelNames: ['result'], registers: [register] })
  const circuitOpen = new Gauge({ name: 'upstream_circuit_open', help: '1 while the upstream circuit breaker is open', registers: [register] })
  const rateLimited = new Counter({ name: 'http_rate_limited_total', help: 'Requests refused by the rate limit, by route', labelNames: ['route'], registers: [register] })
  const overloaded = new Counter({ name: 'http_overload_refused_total', help: 'Requests refused with 503 because the process was overloaded, by reason', labelNames: ['reason'], registers: [register] })
  const redisCommands = new Counter({ name: 'redis_commands_total', help: 'Redis round trips by outcome (errors include connection errors)', labelNames: ['outcome'], registers: [register] })
  const redisDuration = new Histogram({ name: 'redis_command_duration_seconds', help: 'Redis round trip duration', buckets: DURATION_BUCKETS, registers: [register] })

  const subscriptions: Array<[channels.TypedChannel<never>, (message: never) => void]> = []
  function on<M> (channel: channels.TypedChannel<M>, listener: (message: M) => void): void {
    channel.subscribe(listener)
    subscriptions.push([channel as unknown as channels.TypedChannel<never>, listener as (message: never) => void])
  }
  on(channels.mcpRequestChannel, m => { mcpRequests.inc({ method: m.method, outcome: m.outcome }) })
  on(channels.toolCallChannel, m => {
    toolCalls.inc({ tool: m.tool, outcome: m.outcome })
    toolDuration.observe({ tool: m.tool }, m.durationMs / 1000)
  })
  on(channels.sessionChannel, m => {
    if (m.event === 'opened') {
      sessionsOpen.inc()
    } else {
      sessionsOpen.dec()
      sessionsClosed.inc({ reason: m.reason ?? 'unknown' })
    }
  })
  on(channels.streamChannel, m => { if (m.event === 'opened') streamsOpen.inc(); else streamsOpen.dec() })
  on(channels.authDecisionChannel, m => { authDecisions.inc({ outcome: m.outcome, reason: m.reason }) })
  on(channels.jwksFetchChannel, m => {
    jwksFetches.inc({ outcome: m.outcome })
    jwksKeys.set(m.keys)
  })
  on(channels.upstreamCallChannel, m => {
    upstreamCalls.inc({ outcome: m.outcome })
    upstreamDuration.observe(m.durationMs / 1000)
  })
  on(channels.quotaChannel, m => {
    quotaUsed.set(m.used)
    quotaRemaining.set(m.remaining)
  })
  on(channels.cacheChannel, m => { cacheLookups.inc({ result: m.result }) })
  on(channels.circuitChannel, m => { circuitOpen.set(m.state === 'open' ? 1 : 0) })
  on(channels.rateLimitedChannel, m => { rateLimited.inc({ route: m.route }) })
  on(channels.overloadChannel, m => { overloaded.inc({ reason: m.reason }) })
  on(channels.redisChannel, m => {
    redisCommands.inc({ outcome: m.outcome })
    if (m.durationMs !== undefined) redisDuration.observe(m.durationMs / 1000)
  })

  // Keys loaded before this plugin subscribed (the JWKS is fetched at onReady, usually after).
  fastify.addHook('onReady', async () => {
    if (fastify.hasDecorator('jwksCache') && fastify.jwksCache !== null) jwksKeys.set(fastify.jwksCache.keys)
  })

  // A callback hook: no promise per request on the hot path.
  const observeRequest: onResponseHookHandler = (request, reply, done) => {
    httpDuration.observe({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: reply.statusCode }, reply.elapsedTime / 1000)
    done()
  }
  fastify.addHook('onResponse', observeRequest)

  let server: Server | undefined
  if (opts.port !== undefined) {
    server = createServer((req, res) => {
      if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found: metrics are at /metrics\n')
        return
      }
      register.metrics().then(text => {
        res.writeHead(200, { 'content-type': register.contentType }).end(text)
      }, /* c8 ignore next -- collecting fails only if a collect() callback throws, and ours do not */ () => { res.writeHead(500).end() })
    })
    const listening = server
    /* c8 ignore next -- tests listen on loopback only: every test gives a host */
    const host = opts.host ?? '0.0.0.0'
    await new Promise<void>((resolve, reject) => {
      listening.once('error', reject)
      listening.listen(opts.port, host, () => { listening.off('error', reject); resolve() })
    })
    fastify.log.info({ metrics: `http://${host}:${opts.port}/metrics` }, 'metrics listening')
  }

  if (opts.token !== undefined) {
    const expected = digest(opts.token)
    const metricsRoute = async (request: FastifyRequest, reply: FastifyReply): Promise<string> => {
      const header = request.headers.authorization
      const given = header !== undefined && header.slice(0, 7).toLowerCase() === 'bearer ' ? header.slice(7).trim() : undefined
      if (given === undefined || !timingSafeEqual(digest(given), expected)) {
        reply.code(401).header('www-authenticate', 'Bearer realm="metrics"')
        return 'metrics need the configured bearer token\n'
      }
      reply.header('content-type', register.contentType)
      return await register.metrics()
    }
    // Probes and scrapes are not logged at info (the request log's quiet routes).
    fastify.get('/metrics', metricsRoute)
  }

  fastify.decorate('metricsRegistry', register)
  fastify.addHook('onClose', async () => {
    for (const [channel, listener] of subscriptions) channel.unsubscribe(listener)
    register.clear()
    if (server !== undefined) {
      const closing = server
      closing.closeAllConnections()
      await new Promise<void>(resolve => closing.close(() => resolve()))
    }
  })
}

export default fp(metricsPlugin, { name: 'metrics', fastify: '5.x' })
