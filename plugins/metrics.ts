import fp from 'fastify-plugin'
import { createServer, type Server } from 'node:http'
import { createHash, timingSafeEqual } from 'node:crypto'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { FastifyInstance, FastifyReply, FastifyRequest, onResponseHookHandler } from 'fastify'
import * as channels from '../lib/observability/channels.js'
import { FastCounter, FastHistogram, type MetricSource } from '../lib/observability/fast-metrics.js'

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

  // What every request updates: fast-metrics series (see lib/observability/fast-metrics.ts), the rest prom-client's own.
  const fast = <M extends MetricSource>(metric: M): M => { register.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]); return metric }
  const httpDuration = fast(new FastHistogram('http_request_duration_seconds', 'HTTP requests by method, route pattern and status code', DURATION_BUCKETS, ['method', 'route', 'status_code']))
  const mcpRequests = fast(new FastCounter('mcp_requests_total', 'MCP messages answered, by JSON-RPC method and outcome (ok, tool_error, error)', ['method', 'outcome']))
  const toolCalls = fast(new FastCounter('mcp_tool_calls_total', 'Tool calls by tool and outcome (ok, tool_error, invalid_arguments, failed)', ['tool', 'outcome']))
  const toolDuration = fast(new FastHistogram('mcp_tool_call_duration_seconds', 'Tool call duration by tool', DURATION_BUCKETS, ['tool']))
  const sessionsOpen = new Gauge({ name: 'mcp_sessions_open', help: 'MCP sessions open in this process', registers: [register] })
  const sessionsClosed = new Counter({ name: 'mcp_sessions_closed_total', help: 'MCP sessions ended, by reason (deleted, expired, evicted, shutdown)', labelNames: ['reason'], registers: [register] })
  const streamsOpen = new Gauge({ name: 'mcp_streams_open', help: 'SSE streams open in this process', registers: [register] })
  const authDecisions = fast(new FastCounter('auth_decisions_total', 'Bearer token decisions by outcome and reason', ['outcome', 'reason']))
  const jwksFetches = new Counter({ name: 'auth_jwks_fetches_total', help: 'JWKS fetches by outcome', labelNames: ['outcome'], registers: [register] })
  const jwksKeys = new Gauge({ name: 'auth_jwks_keys', help: 'Signing keys held from the issuer\'s JWKS', registers: [register] })
  const upstreamCalls = new Counter({ name: 'upstream_calls_total', help: 'Alpha Vantage calls by outcome (ok or the failure kind)', labelNames: ['outcome'], registers: [register] })
  const upstreamDuration = new Histogram({ name: 'upstream_call_duration_seconds', help: 'Alpha Vantage call duration', buckets: DURATION_BUCKETS, registers: [register] })
  const quotaUsed = new Gauge({ name: 'upstream_quota_used', help: 'Alpha Vantage calls counted today (UTC) by this process', registers: [register] })
  const quotaRemaining = new Gauge({ name: 'upstream_quota_remaining', help: 'Alpha Vantage calls left today (UTC) for this process', registers: [register] })
  const cacheLookups = fast(new FastCounter('news_cache_lookups_total', 'News cache lookups: hit (fresh), miss (not fresh), stale (served past freshness because upstream could not answer; also a miss)', ['result']))
  const circuitOpen = new Gauge({ name: 'upstream_circuit_open', help: '1 while the upstream circuit breaker is open', registers: [register] })
  const rateLimited = new Counter({ name: 'http_rate_limited_total', help: 'Requests refused by the rate limit, by route', labelNames: ['route'], registers: [register] })
  const overloaded = new Counter({ name: 'http_overload_refused_total', help: 'Requests refused with 503 because the process was overloaded, by reason', labelNames: ['reason'], registers: [register] })
  const redisCommands = fast(new FastCounter('redis_commands_total', 'Redis round trips by outcome (errors include connection errors)', ['outcome']))
  const redisDuration = fast(new FastHistogram('redis_command_duration_seconds', 'Redis round trip duration', DURATION_BUCKETS))

  const subscriptions: Array<[channels.TypedChannel<never>, (message: never) => void]> = []
  function on<M> (channel: channels.TypedChannel<M>, listener: (message: M) => void): void {
    channel.subscribe(listener)
    subscriptions.push([channel as unknown as channels.TypedChannel<never>, listener as (message: never) => void])
  }
  on(channels.mcpRequestChannel, m => { mcpRequests.inc(m.method, m.outcome) })
  on(channels.toolCallChannel, m => {
    toolCalls.inc(m.tool, m.outcome)
    toolDuration.observe(m.durationMs / 1000, m.tool)
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
  on(channels.authDecisionChannel, m => { authDecisions.inc(m.outcome, m.reason) })
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
  on(channels.cacheChannel, m => { cacheLookups.inc(m.result) })
  on(channels.circuitChannel, m => { circuitOpen.set(m.state === 'open' ? 1 : 0) })
  on(channels.rateLimitedChannel, m => { rateLimited.inc({ route: m.route }) })
  on(channels.overloadChannel, m => { overloaded.inc({ reason: m.reason }) })
  on(channels.redisChannel, m => {
    redisCommands.inc(m.outcome)
    if (m.durationMs !== undefined) redisDuration.observe(m.durationMs / 1000)
  })

  // Keys loaded before this plugin subscribed (the JWKS is fetched at onReady, usually after).
  fastify.addHook('onReady', async () => {
    if (fastify.hasDecorator('jwksCache') && fastify.jwksCache !== null) jwksKeys.set(fastify.jwksCache.keys)
  })

  // A callback hook: no promise per request on the hot path.
  const observeRequest: onResponseHookHandler = (request, reply, done) => {
    httpDuration.observe(reply.elapsedTime / 1000, request.method, request.routeOptions.url ?? 'unmatched', reply.statusCode)
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
