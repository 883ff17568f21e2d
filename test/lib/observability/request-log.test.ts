import t from 'tap'
import type { InjectOptions } from 'fastify'
import { buildApp, MCP_HEADERS, openSession, callTool, API_KEY } from '../../helpers/build-app.js'
import { logLevelFrom } from '../../../plugins/config.js'
import { pathOf, redactedUrl } from '../../../lib/observability/request-log.js'

interface LogLine {
  level: number
  msg: string
  reqId?: string
  url?: string
  statusCode?: number
  durationMs?: number
  mcp?: { method?: string, tool?: string, session?: string, subject?: string, outcome?: string, errorCode?: number }
}

const parse = (logs: string[]): LogLine[] => logs.map(l => JSON.parse(l) as LogLine)

t.test('the level comes from LOG_LEVEL, then FASTIFY_LOG_LEVEL, default info; a bad one names its variable', async t => {
  t.equal(logLevelFrom({}), 'info')
  t.equal(logLevelFrom({ FASTIFY_LOG_LEVEL: 'warn' }), 'warn')
  t.equal(logLevelFrom({ LOG_LEVEL: 'ERROR', FASTIFY_LOG_LEVEL: 'warn' }), 'error')
  t.equal(logLevelFrom({ LOG_LEVEL: ' ', FASTIFY_LOG_LEVEL: 'debug' }), 'debug', 'an empty value counts as unset')
  t.throws(() => logLevelFrom({ LOG_LEVEL: 'loud' }), /^Invalid configuration: LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent \(got "loud"\)$/)
  t.throws(() => logLevelFrom({ FASTIFY_LOG_LEVEL: 'x' }), /FASTIFY_LOG_LEVEL/)
})

t.test('URLs lose their query in logs and credentials in traces', async t => {
  t.equal(pathOf('/mcp?access_token=abc'), '/mcp')
  t.equal(pathOf('/mcp'), '/mcp')
  t.equal(redactedUrl(new URL('https://u:p@h/q?function=NEWS&apikey=SECRET&tickers=AAPL')), 'https://REDACTED@h/q?function=NEWS&apikey=REDACTED&tickers=AAPL')
  t.equal(redactedUrl(new URL('http://h/keys')), 'http://h/keys')
})

t.test('one line per MCP request, with what an operator follows a session or a caller by', async t => {
  const ctx = await buildApp(t)
  const session = await openSession(ctx)
  ctx.logs.length = 0
  const res = await callTool(ctx, session, 'get_news_sentiment', { ticker: 'AAPL' })
  t.equal(res.statusCode, 200)
  const lines = parse(ctx.logs)
  const completed = lines.filter(l => l.msg === 'request completed')
  t.equal(completed.length, 1, 'exactly one completion line')
  t.notOk(lines.some(l => l.msg === 'incoming request'), 'no separate "incoming request" line')
  const [line] = completed as [LogLine]
  t.equal(line.level, 30, 'at info')
  t.equal(line.url, '/mcp')
  t.equal(line.statusCode, 200)
  t.type(line.durationMs, 'number')
  t.type(line.reqId, 'string', 'request id for correlation')
  t.same(line.mcp, { method: 'tools/call', tool: 'get_news_sentiment', session: session.slice(0, 8), subject: 'user_123', outcome: 'ok' })

  ctx.logs.length = 0
  await callTool(ctx, session, 'get_news_sentiment', { ticker: 'not a ticker!' })
  await callTool(ctx, session, 'no_such_tool', {})
  const outcomes = parse(ctx.logs).filter(l => l.msg === 'request completed').map(l => [l.mcp?.outcome, l.mcp?.errorCode])
  t.same(outcomes, [['error', -32602], ['error', -32602]], 'JSON-RPC errors say so, with their code')

  ctx.logs.length = 0
  // A JSON-RPC response to a request this server never sent: refused (400), and logged so.
  const stray = await ctx.app.inject({ method: 'POST', url: '/mcp', headers: { ...MCP_HEADERS, authorization: `Bearer ${ctx.token}`, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' }, payload: { jsonrpc: '2.0', id: 9, result: {} } })
  t.equal(stray.statusCode, 400)
  await new Promise(resolve => setImmediate(resolve))
  t.equal(parse(ctx.logs).find(l => l.msg === 'request completed')?.mcp?.outcome, 'refused')

  ctx.logs.length = 0
  const refused = await ctx.app.inject({ method: 'POST', url: '/mcp', headers: MCP_HEADERS, payload: { jsonrpc: '2.0', id: 1, method: 'tools/list' } })
  t.equal(refused.statusCode, 401)
  const refusal = parse(ctx.logs).find(l => l.msg === 'request completed') as LogLine
  t.same(refusal.mcp, { outcome: 'refused' }, 'refused before the transport (the body is not even parsed): outcome refused')
  t.equal(refusal.statusCode, 401)

  ctx.logs.length = 0
  const auth = { ...MCP_HEADERS, authorization: `Bearer ${ctx.token}` }
  await ctx.app.inject({ method: 'POST', url: '/mcp', headers: auth, payload: { jsonrpc: '2.0', id: 1, method: 'tools/list' } })
  await ctx.app.inject({ method: 'POST', url: '/mcp', headers: auth, payload: { jsonrpc: '2.0', id: 1, method: 'made/up' } })
  await new Promise(resolve => setImmediate(resolve))
  t.same(parse(ctx.logs).filter(l => l.msg === 'request completed').map(l => l.mcp),
    [{ method: 'tools/list', subject: 'user_123', outcome: 'refused' }, { method: 'unknown', subject: 'user_123', outcome: 'refused' }],
    'refused for want of a session: the method when MCP defines it, else unknown')
})

t.test('probes are logged at debug only', async t => {
  const ctx = await buildApp(t)
  ctx.logs.length = 0
  for (const url of ['/health', '/ready']) t.equal((await ctx.app.inject({ url })).statusCode, 200)
  // The line is written when the response has finished, just after inject() resolves.
  await new Promise(resolve => setImmediate(resolve))
  const lines = parse(ctx.logs).filter(l => l.msg === 'request completed')
  t.same(lines.map(l => [l.url, l.level]), [['/health', 20], ['/ready', 20]])
})

t.test('no secret reaches a log line, by any path', async t => {
  const ctx = await buildApp(t)
  const { token } = ctx
  const session = await openSession(ctx)
  const auth = { ...MCP_HEADERS, authorization: `Bearer ${token}`, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' }
  const attempts: Array<InjectOptions & { method: string, url: string }> = [
    // In the query string: refused (RFC 6750 §2.3 is not supported), on the MCP path and elsewhere.
    { method: 'POST', url: `/mcp?access_token=${token}`, headers: MCP_HEADERS, payload: { jsonrpc: '2.0', id: 1, method: 'tools/list' } },
    { method: 'GET', url: `/nowhere?access_token=${token}&apikey=${API_KEY}` },
    { method: 'GET', url: `/health?access_token=${token}` },
    // In headers other than Authorization.
    { method: 'POST', url: '/mcp', headers: { ...MCP_HEADERS, 'x-access-token': token, cookie: `session=${token}`, 'x-api-key': API_KEY }, payload: { jsonrpc: '2.0', id: 1, method: 'tools/list' } },
    { method: 'POST', url: '/mcp', headers: { ...auth, 'x-forwarded-authorization': `Bearer ${token}` }, payload: { jsonrpc: '2.0', id: 2, method: 'tools/list' } },
    // In bodies: as a tool argument, as a bad JSON body, as a JSON-RPC id, as a malformed message.
    { method: 'POST', url: '/mcp', headers: auth, payload: { jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'get_news_sentiment', arguments: { ticker: token } } } },
    { method: 'POST', url: '/mcp', headers: auth, payload: `{"jsonrpc":"2.0","id":4,"method":"${token}` },
    { method: 'POST', url: '/mcp', headers: auth, payload: { jsonrpc: '2.0', id: token, method: token } },
    { method: 'POST', url: '/mcp', headers: auth, payload: { jsonrpc: '1.0', id: token, token } },
    { method: 'POST', url: '/mcp', headers: { ...auth, 'content-type': 'text/plain' }, payload: token },
    // A bad token: its text never appears in the auth decision either.
    { method: 'POST', url: '/mcp', headers: { ...MCP_HEADERS, authorization: `Bearer ${token}x` }, payload: { jsonrpc: '2.0', id: 5, method: 'tools/list' } }
  ]
  for (const attempt of attempts) {
    const res = await ctx.app.inject(attempt)
    t.ok(res.statusCode < 500, `${attempt.method} ${attempt.url.slice(0, 20)} answered ${res.statusCode}`)
  }
  t.ok(ctx.logs.length >= attempts.length, `${ctx.logs.length} lines captured`)
  // The token's signature alone is enough to find it, however it was cut.
  const signature = token.split('.')[2] as string
  const leaks = ctx.logs.filter(l => l.includes(signature) || l.includes(API_KEY) || l.includes('test-secret-never-logged'))
  t.same(leaks, [], 'no line holds the token, the API key or the client secret')
  t.ok(ctx.logs.some(l => l.includes('"url":"/nowhere"')), 'the URL is logged, without its query')
})

t.test('the req serializer, an errored response, credentials in user info', async t => {
  const { RequestLogController, requestSerializer } = await import('../../../lib/observability/request-log.js')
  t.same(requestSerializer({ method: 'GET', url: '/x?access_token=abc', ip: '127.0.0.1' } as never), { method: 'GET', url: '/x', remoteAddress: '127.0.0.1' })
  t.equal(redactedUrl(new URL('http://:pw@h/')), 'http://REDACTED@h/')
  const written: Array<[string, Record<string, unknown>, string]> = []
  const log = { error: (o: Record<string, unknown>, m: string) => written.push(['error', o, m]) }
  new RequestLogController().requestCompleted(new Error('socket reset'), { method: 'GET', url: '/x?q=1', routeOptions: {} } as never, { statusCode: 200, elapsedTime: 1, log } as never)
  t.equal(written.length, 1)
  t.equal(written[0]?.[2], 'request errored')
  t.equal(written[0]?.[1].url, '/x')
})
