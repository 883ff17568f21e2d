import t from 'tap'
import Fastify from 'fastify'
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base'
import { buildApp, MCP_HEADERS, openSession, callTool, API_KEY } from '../helpers/build-app.js'
import tracing from '../../plugins/tracing.js'
import * as channels from '../../lib/observability/channels.js'

t.test('off unless OTEL_EXPORTER_OTLP_ENDPOINT is set', async t => {
  const ctx = await buildApp(t, {}, { skipOverride: true })
  t.notOk(ctx.app.hasDecorator('tracerProvider'))
})

t.test('spans for the request, token verification, MCP method, tool call and upstream call; W3C context upstream; no secret in any attribute', async t => {
  const exporter = new InMemorySpanExporter()
  const ctx = await buildApp(t, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9/otlp', OTEL_SERVICE_NAME: 'news-test' }, { appOptions: { spanExporter: exporter }, skipOverride: true })
  const session = await openSession(ctx)
  const res = await callTool(ctx, session, 'get_news_sentiment', { ticker: 'AAPL' })
  t.equal(res.statusCode, 200)
  // A token in the query string of a refused request, and probes (not traced).
  await ctx.app.inject({ method: 'POST', url: `/mcp?access_token=${ctx.token}`, headers: MCP_HEADERS, payload: { jsonrpc: '2.0', id: 1, method: 'ping' } })
  await ctx.app.inject({ url: '/health' })
  await callTool(ctx, session, 'not_a_tool', {})
  // A message published outside any request (no active span) still makes a span.
  channels.mcpRequestChannel.publish({ method: 'ping', tool: undefined, outcome: 'ok', errorCode: undefined, request: {} })
  await ctx.app.tracerProvider.forceFlush()
  const spans = exporter.getFinishedSpans()

  const byName = (name: string): ReadableSpan[] => spans.filter(s => s.name === name)
  const tool = byName('tool get_news_sentiment')[0]
  t.ok(tool, 'a tool call span')
  t.equal(tool?.attributes['mcp.tool.outcome'], 'ok')
  const traceId = tool?.spanContext().traceId
  const sameTrace = spans.filter(s => s.spanContext().traceId === traceId)
  const names = sameTrace.map(s => s.name)
  t.ok(names.includes('request'), 'the HTTP request span (@fastify/otel)')
  t.ok(names.some(n => /onRequest - authenticate/.test(n)), `the token verification span (${names.join(', ')})`)
  t.ok(names.includes('mcp tools/call'), 'the MCP method span')
  const upstream = sameTrace.find(s => s.name === 'GET')
  t.ok(upstream, 'the upstream call span (undici)')
  t.match(upstream?.attributes['url.query'], /[?&]apikey=REDACTED(&|$)/, 'the API key is redacted from the query')
  t.match(upstream?.attributes['url.full'], /^http:\/\/127\.0\.0\.1:\d+\/query\?.*apikey=REDACTED/, 'and from the full URL')
  const request = sameTrace.find(s => s.name === 'request')
  t.equal(request?.attributes['http.route'], '/mcp')
  t.equal(request?.resource.attributes['service.name'], 'news-test')

  // W3C trace context went upstream, in the same trace.
  const hit = ctx.upstream.hits.at(-1)
  t.match(hit?.headers.traceparent, new RegExp(`^00-${traceId}-[0-9a-f]{16}-0[01]$`), 'traceparent sent to Alpha Vantage')
  t.notOk(hit?.headers.authorization, 'never the client\'s token')

  t.notOk(spans.some(s => s.attributes['url.path'] === '/health'), 'probes are not traced')
  const failed = spans.find(s => s.name === 'mcp tools/call' && s.attributes['mcp.outcome'] === 'error')
  t.equal(failed?.status.code, 2, 'a JSON-RPC error marks the MCP span as an error')
  t.equal(failed?.attributes['mcp.tool.name'], 'unknown', 'a client-chosen tool name is not recorded')
  t.ok(byName('mcp ping').length > 0)
  const refused = spans.find(s => s.name === 'request' && s.attributes['http.response.status_code'] === 401)
  t.equal(refused?.attributes['url.path'], '/mcp', 'the query string is not recorded')

  const everything = JSON.stringify(spans.map(s => ({ name: s.name, attributes: s.attributes, events: s.events, status: s.status, resource: s.resource.attributes })))
  const signature = ctx.token.split('.')[2] as string
  t.notOk(everything.includes(signature), 'no token in any span')
  t.notOk(everything.includes(API_KEY), 'no API key in any span')
  t.notOk(everything.includes('test-secret-never-logged'), 'no client secret in any span')
})

t.test('the OTLP exporter from an endpoint', async t => {
  const app = Fastify()
  await app.register(tracing, { serviceName: 'x', endpoint: 'http://127.0.0.1:9/' })
  await app.ready()
  t.ok(app.tracerProvider)
  await app.close()
})

t.test('option validation', async t => {
  await t.rejects(async () => { await Fastify().register(tracing, { serviceName: 'x' }).ready() }, /^tracing: give "endpoint" or "exporter"/)
})
