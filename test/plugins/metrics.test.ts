import t from 'tap'
import Fastify from 'fastify'
import { buildApp, MCP_HEADERS, openSession, callTool } from '../helpers/build-app.js'
import { freePort } from '../helpers/mcp-app.js'
import metrics from '../../plugins/metrics.js'
import * as channels from '../../lib/observability/channels.js'

const METRICS_TOKEN = 'metrics-token-0123456789'

/** The value of one sample line (`name{labels} value`), or undefined. */
function sample (text: string, series: string): number | undefined {
  const line = text.split('\n').find(l => l.startsWith(series + ' '))
  return line === undefined ? undefined : Number(line.slice(series.length + 1))
}

t.test('not served unless METRICS_PORT or METRICS_TOKEN is set', async t => {
  const ctx = await buildApp(t)
  t.equal((await ctx.app.inject({ url: '/metrics' })).statusCode, 404)
  t.notOk(ctx.app.hasDecorator('metricsRegistry'), 'and nothing is collected')
})

t.test('behind a bearer token on the app port: every signal, bounded labels', async t => {
  const ctx = await buildApp(t, { METRICS_TOKEN })
  for (const authorization of [undefined, 'Bearer wrong-token-0123456789', `Basic ${METRICS_TOKEN}`, `Bearer ${ctx.token}`]) {
    const res = await ctx.app.inject({ url: '/metrics', headers: authorization === undefined ? {} : { authorization } })
    t.equal(res.statusCode, 401, `refused with ${authorization?.slice(0, 12) ?? 'no credentials'}`)
    t.equal(res.headers['www-authenticate'], 'Bearer realm="metrics"')
  }

  const session = await openSession(ctx)
  t.equal((await callTool(ctx, session, 'get_news_sentiment', { ticker: 'AAPL' })).statusCode, 200)
  await callTool(ctx, session, 'get_news_sentiment', { ticker: 'AAPL' })
  await callTool(ctx, session, 'get_news_sentiment', { ticker: '???' })
  await callTool(ctx, session, 'not_a_tool', {})
  await ctx.app.inject({ method: 'POST', url: '/mcp', headers: MCP_HEADERS, payload: { jsonrpc: '2.0', id: 1, method: 'ping' } })
  await ctx.app.inject({ method: 'POST', url: '/mcp', headers: { ...MCP_HEADERS, authorization: 'Bearer not-a-jwt' }, payload: {} })
  await ctx.app.inject({ method: 'DELETE', url: '/mcp', headers: { ...MCP_HEADERS, authorization: `Bearer ${ctx.token}`, 'mcp-session-id': session } })
  await new Promise(resolve => setImmediate(resolve))

  const res = await ctx.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const text = res.body
  t.equal(sample(text, 'mcp_tool_calls_total{tool="get_news_sentiment",outcome="ok"}'), 2)
  t.equal(sample(text, 'mcp_tool_calls_total{tool="get_news_sentiment",outcome="invalid_arguments"}'), 1)
  t.equal(sample(text, 'mcp_tool_call_duration_seconds_count{tool="get_news_sentiment"}'), 3)
  t.equal(sample(text, 'mcp_requests_total{method="tools/call",outcome="ok"}'), 2)
  t.equal(sample(text, 'mcp_requests_total{method="tools/call",outcome="error"}'), 2)
  t.equal(sample(text, 'mcp_requests_total{method="initialize",outcome="ok"}'), 1)
  t.equal(sample(text, 'mcp_sessions_open'), 0, 'opened then deleted')
  t.equal(sample(text, 'mcp_sessions_closed_total{reason="deleted"}'), 1)
  t.equal(sample(text, 'auth_decisions_total{outcome="denied",reason="no_credentials"}'), 1)
  t.equal(sample(text, 'auth_decisions_total{outcome="denied",reason="invalid_token"}'), 1)
  t.ok((sample(text, 'auth_decisions_total{outcome="allowed",reason="valid"}') ?? 0) >= 6)
  t.equal(sample(text, 'auth_jwks_keys'), 2, 'the issuer publishes two keys')
  t.equal(sample(text, 'auth_jwks_fetches_total{outcome="ok"}'), 1)
  t.equal(sample(text, 'upstream_calls_total{outcome="ok"}'), 1, 'the second call came from the cache')
  t.equal(sample(text, 'news_cache_lookups_total{result="miss"}'), 1)
  t.equal(sample(text, 'news_cache_lookups_total{result="hit"}'), 1)
  t.equal(sample(text, 'upstream_quota_used'), 1)
  t.equal(sample(text, 'upstream_quota_remaining'), 24)
  t.ok((sample(text, 'http_request_duration_seconds_count{method="POST",route="/mcp",status_code="200"}') ?? 0) >= 5)
  t.equal(sample(text, 'http_request_duration_seconds_count{method="POST",route="/mcp",status_code="401"}'), 2)
  t.match(text, /process_resident_memory_bytes \d+/, 'process metrics too')

  // Labels are bounded: no session id, subject, token, ticker or client-chosen name.
  for (const value of [session, 'user_123', ctx.token.slice(-16), 'AAPL', 'not_a_tool', '???']) {
    t.notOk(text.includes(value), `no label holds ${value.slice(0, 8)}`)
  }
})

t.test('on a port of its own (METRICS_PORT), not on the app port', async t => {
  const port = await freePort()
  const ctx = await buildApp(t, { METRICS_PORT: String(port), METRICS_HOST: '127.0.0.1' })
  t.equal((await ctx.app.inject({ url: '/metrics' })).statusCode, 404, 'the app port does not serve them')
  const res = await fetch(`http://127.0.0.1:${port}/metrics`)
  t.equal(res.status, 200)
  t.match(await res.text(), /# TYPE mcp_tool_calls_total counter/)
  t.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404)
  t.equal((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status, 404)
})

t.test('every channel is counted; closing unsubscribes', async t => {
  const app = Fastify()
  await app.register(metrics, { token: METRICS_TOKEN, defaultMetrics: false })
  await app.ready()
  channels.streamChannel.publish({ event: 'opened' })
  channels.streamChannel.publish({ event: 'opened' })
  channels.streamChannel.publish({ event: 'closed' })
  channels.sessionChannel.publish({ event: 'opened' })
  channels.sessionChannel.publish({ event: 'closed' })
  channels.circuitChannel.publish({ state: 'open' })
  channels.rateLimitedChannel.publish({ route: '/mcp' })
  channels.overloadChannel.publish({ reason: 'eventLoopDelay' })
  channels.redisChannel.publish({ outcome: 'error' })
  channels.redisChannel.publish({ outcome: 'ok', command: 'GET', durationMs: 2 })
  channels.cacheChannel.publish({ result: 'stale' })
  channels.jwksFetchChannel.publish({ outcome: 'error', keys: 0 })
  const text = (await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).body
  t.equal(sample(text, 'mcp_streams_open'), 1)
  t.equal(sample(text, 'mcp_sessions_closed_total{reason="unknown"}'), 1)
  t.equal(sample(text, 'upstream_circuit_open'), 1)
  t.equal(sample(text, 'http_rate_limited_total{route="/mcp"}'), 1)
  t.equal(sample(text, 'http_overload_refused_total{reason="eventLoopDelay"}'), 1)
  t.equal(sample(text, 'redis_commands_total{outcome="error"}'), 1)
  t.equal(sample(text, 'redis_commands_total{outcome="ok"}'), 1)
  t.equal(sample(text, 'redis_command_duration_seconds_count'), 1)
  t.equal(sample(text, 'news_cache_lookups_total{result="stale"}'), 1)
  t.equal(sample(text, 'auth_jwks_fetches_total{outcome="error"}'), 1)
  t.notMatch(text, /process_cpu/, 'defaultMetrics: false')
  await app.close()
  t.notOk(channels.streamChannel.hasSubscribers, 'no subscriber left after close')
})

t.test('option validation', async t => {
  await t.rejects(async () => { await Fastify().register(metrics, {}).ready() }, /^metrics: give "port" or "token"/)
  await t.rejects(async () => { await Fastify().register(metrics, { token: 'short' }).ready() }, /at least 16 characters/)
  const port = await freePort()
  const busy = Fastify()
  t.teardown(async () => { await busy.close() })
  await busy.listen({ port, host: '127.0.0.1' })
  await t.rejects(async () => { await Fastify().register(metrics, { port, host: '127.0.0.1', defaultMetrics: false }).ready() }, /EADDRINUSE/, 'a taken port fails the boot')
})

t.test('a closed circuit and an unmatched route', async t => {
  const app = Fastify()
  await app.register(metrics, { token: METRICS_TOKEN, defaultMetrics: false })
  t.teardown(async () => { await app.close() })
  channels.circuitChannel.publish({ state: 'open' })
  channels.circuitChannel.publish({ state: 'closed' })
  await app.inject({ url: '/no-such-route' })
  await new Promise(resolve => setImmediate(resolve))
  const text = (await app.inject({ url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).body
  t.equal(sample(text, 'upstream_circuit_open'), 0)
  t.equal(sample(text, 'http_request_duration_seconds_count{method="GET",route="unmatched",status_code="404"}'), 1, 'no URL becomes a label')
})

t.test('refusals, tool errors, streams and JWKS failures are counted too', async t => {
  const ctx = await buildApp(t, { METRICS_TOKEN, MCP_RATE_LIMIT_MAX: '8' }, { skipOverride: true })
  const session = await openSession(ctx)
  ctx.upstream.mode = 'http-404'
  await callTool(ctx, session, 'get_news_sentiment', { ticker: 'MSFT' })
  await ctx.app.inject({ method: 'POST', url: '/mcp', headers: { ...MCP_HEADERS, authorization: 'Basic eDp5' }, payload: {} })
  const base = await ctx.app.listen({ port: 0, host: '127.0.0.1' })
  const stream = await fetch(`${base}/mcp`, { headers: { accept: 'text/event-stream', authorization: `Bearer ${ctx.token}`, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' } })
  await stream.body?.cancel()
  for (let i = 0; i < 8; i++) await callTool(ctx, session, 'get_news_sentiment', { ticker: 'MSFT' })
  ctx.issuer.jwksMode = 'down'
  await ctx.app.jwksCache?.refresh().catch(() => {})
  await new Promise(resolve => setTimeout(resolve, 100))
  const text = (await ctx.app.inject({ url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).body
  t.ok((sample(text, 'mcp_tool_calls_total{tool="get_news_sentiment",outcome="tool_error"}') ?? 0) >= 1)
  t.equal(sample(text, 'auth_decisions_total{outcome="denied",reason="not_bearer"}'), 1)
  t.ok((sample(text, 'http_rate_limited_total{route="/mcp"}') ?? 0) >= 1)
  t.equal(sample(text, 'auth_jwks_fetches_total{outcome="error"}'), 1)
  t.equal(sample(text, 'mcp_streams_open'), 0, 'opened and closed')
})
