import t from 'tap'
import Fastify from 'fastify'
import { z } from 'zod'
import { buildApp, initializeBody, openSession } from '../helpers/build-app.js'
import {
  buildMcpApp, initSession, leaksInternals, listenLocal, mcpHeaders, postMcp, readToEnd, sseMessages, toolCall
} from '../helpers/mcp-app.js'
import { LocalIssuer } from '../helpers/issuer.js'
import mcp from '../../plugins/mcp.js'
import { DEFAULT_MAX_BATCH } from '../../plugins/config.js'

const LATEST = '2025-11-25'

// One issuer (key generation is the slow part) for every app in this file.
const issuer = await LocalIssuer.start()
t.teardown(() => issuer.close())

t.test('initialize', async t => {
  const ctx = await buildApp(t, {}, { issuer, skipOverride: true })

  t.test('echoes a version the server speaks (lifecycle "Version Negotiation")', async t => {
    for (const version of ['2024-11-05', '2025-03-26', '2025-06-18', LATEST]) {
      const res = await postMcp(ctx.app, initializeBody(version, 7), mcpHeaders(ctx.token))
      t.equal(res.statusCode, 200)
      t.match(res.headers['content-type'], /^application\/json/)
      const body = res.json()
      t.equal(body.id, 7)
      t.equal(body.result.protocolVersion, version)
      t.same(body.result.capabilities, { tools: { listChanged: false }, logging: {}, prompts: { listChanged: true }, resources: { subscribe: true, listChanged: true }, completions: {} })
      t.equal(body.result.serverInfo.name, 'finance-news-mcp')
      t.match(body.result.instructions, /get_news_sentiment/)
    }
  })

  t.test('answers an unknown version with the latest it speaks', async t => {
    const res = await postMcp(ctx.app, initializeBody('1999-01-01'), mcpHeaders(ctx.token))
    t.equal(res.statusCode, 200)
    t.equal(res.json().result.protocolVersion, LATEST)
    t.type(res.headers['mcp-session-id'], 'string')
  })

  t.test('refuses initialize params without a protocolVersion or with bad capabilities (-32602), opening no session', async t => {
    for (const params of [{ capabilities: {} }, { protocolVersion: 20250618 }, { protocolVersion: '2025-06-18', capabilities: 'all' }]) {
      const res = await postMcp(ctx.app, { jsonrpc: '2.0', id: 'init', method: 'initialize', params }, mcpHeaders(ctx.token))
      t.equal(res.statusCode, 200)
      t.same(res.json().id, 'init')
      t.equal(res.json().error.code, -32602)
      t.equal(res.headers['mcp-session-id'], undefined)
    }
    const noParams = await postMcp(ctx.app, { jsonrpc: '2.0', id: 3, method: 'initialize' }, mcpHeaders(ctx.token))
    t.equal(noParams.json().error.code, -32602)
  })

  t.test('accepts a client without clientInfo', async t => {
    const res = await postMcp(ctx.app, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18' } }, mcpHeaders(ctx.token))
    t.equal(res.statusCode, 200)
    const ping = await postMcp(ctx.app, { jsonrpc: '2.0', id: 2, method: 'ping' }, mcpHeaders(ctx.token, res.headers['mcp-session-id'] as string))
    t.equal(ping.statusCode, 200)
  })

  t.test('a 1 MB clientInfo: the session keeps and the log line names only 64 characters of name and version', async t => {
    const huge = 'N'.repeat(1000 * 1000)
    const body = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: huge, version: 'V'.repeat(10_000), title: 'T'.repeat(10_000) } } }
    const res = await postMcp(ctx.app, body, mcpHeaders(ctx.token))
    t.equal(res.statusCode, 200)
    const id = res.headers['mcp-session-id'] as string
    t.same(ctx.app.mcpSessions.get(id)?.clientInfo, { name: 'N'.repeat(64), version: 'V'.repeat(64) })
    const opened = ctx.logs.filter(line => line.includes('MCP session opened') && line.includes(id.slice(0, 8)))
    t.equal(opened.length, 1)
    t.equal(JSON.parse(opened[0] as string).client, 'N'.repeat(64))
    t.ok((opened[0] as string).length < 1024, `the log line is ${(opened[0] as string).length} bytes`)
    t.notOk(ctx.logs.some(line => line.length > 100_000), 'no log line carries the megabyte')
  })

  t.test('session ids: visible ASCII, at least 128 bits, unique (transports "Session Management")', async t => {
    const ids = new Set<string>()
    for (let i = 0; i < 20; i++) ids.add(await initSession(ctx.app, ctx.token))
    t.equal(ids.size, 20)
    for (const id of ids) {
      t.match(id, /^[\x21-\x7E]+$/)
      // base64url: 6 bits per character.
      t.ok(id.length * 6 >= 128, `${id.length} characters carry at least 128 bits`)
    }
  })
})

t.test('messages within a session', async t => {
  const ctx = await buildApp(t, {}, { issuer })
  const session = await openSession(ctx)
  const headers = mcpHeaders(ctx.token, session, '2025-06-18')

  t.test('a notification is accepted with 202 and no body', async t => {
    const res = await postMcp(ctx.app, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers)
    t.equal(res.statusCode, 202)
    t.equal(res.body, '')
  })

  t.test('a JSON-RPC response to no request of this server is refused with 400 (transports "Sending Messages to the Server")', async t => {
    for (const msg of [{ jsonrpc: '2.0', id: 'srv-1', result: {} }, { jsonrpc: '2.0', id: 4, error: { code: -1, message: 'no' } }]) {
      const res = await postMcp(ctx.app, msg, headers)
      t.equal(res.statusCode, 400)
      t.same(res.json(), { jsonrpc: '2.0', id: null, error: { code: -32600, message: `Invalid Request: this session has no pending request with id ${JSON.stringify(msg.id)}` } })
    }
  })

  t.test('ping answers an empty result', async t => {
    const res = await postMcp(ctx.app, { jsonrpc: '2.0', id: 'p', method: 'ping' }, headers)
    t.same(res.json(), { jsonrpc: '2.0', id: 'p', result: {} })
  })

  t.test('an unknown method is -32601', async t => {
    const res = await postMcp(ctx.app, { jsonrpc: '2.0', id: 9, method: 'resources/delete' }, headers)
    t.equal(res.statusCode, 200)
    t.equal(res.json().id, 9)
    t.equal(res.json().error.code, -32601)
  })

  t.test('tools/list describes get_news_sentiment', async t => {
    const res = await postMcp(ctx.app, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, headers)
    const tools = res.json().result.tools as Array<Record<string, any>>
    const tool = tools.find(x => x.name === 'get_news_sentiment')
    t.ok(tool)
    t.type(tool?.description, 'string')
    t.equal(tool?.inputSchema.type, 'object')
    t.ok(tool?.inputSchema.properties.ticker)
    t.equal(tool?.inputSchema.$schema, undefined, 'no dialect clients may not bundle')
    t.equal(tool?.outputSchema.type, 'object')
    t.ok(tool?.outputSchema.properties.articles)
    t.equal(tool?.annotations.readOnlyHint, true)
  })

  t.test('tools/call protocol errors are -32602 (tools "Error Handling")', async t => {
    const cases = [
      { params: { name: 'no_such_tool', arguments: {} }, message: /Unknown tool: no_such_tool/ },
      { params: { arguments: {} }, message: /tool name/ },
      { params: { name: 'get_news_sentiment', arguments: ['AAPL'] }, message: /arguments must be an object/ }
    ]
    for (const { params, message } of cases) {
      const res = await postMcp(ctx.app, { jsonrpc: '2.0', id: 5, method: 'tools/call', params }, headers)
      t.equal(res.statusCode, 200)
      t.equal(res.json().error.code, -32602)
      t.match(res.json().error.message, message)
    }
    t.equal(ctx.upstream.hits.length, 0)
  })

  t.test('invalid arguments: -32602 up to 2025-06-18', async t => {
    const res = await postMcp(ctx.app, toolCall('get_news_sentiment', { ticker: 'not a ticker!' }), headers)
    t.equal(res.json().error.code, -32602)
    t.match(res.json().error.message, /ticker: must be a ticker symbol/)
    t.equal(ctx.upstream.hits.length, 0)
  })

  t.test('invalid arguments: an isError result from 2025-11-25 (SEP-1303)', async t => {
    const latest = await openSession(ctx, LATEST)
    const res = await postMcp(ctx.app, toolCall('get_news_sentiment', { ticker: 'not a ticker!' }), mcpHeaders(ctx.token, latest, LATEST))
    const body = res.json()
    t.equal(body.error, undefined)
    t.equal(body.result.isError, true)
    t.match(body.result.content[0].text, /Invalid arguments for tool get_news_sentiment: ticker:/)
    t.equal(ctx.upstream.hits.length, 0)
  })

  t.test('initialize is refused inside a 2025-03-26 batch', async t => {
    const old = await openSession(ctx, '2025-03-26')
    const res = await postMcp(ctx.app, [initializeBody('2025-03-26', 1)], mcpHeaders(ctx.token, old, '2025-03-26'))
    t.equal(res.statusCode, 200)
    t.equal(res.json()[0].error.code, -32600)
  })
})

t.test('session lifecycle (transports "Session Management")', async t => {
  const ctx = await buildApp(t, { MCP_SESSION_IDLE_TTL_SEC: '1' }, { issuer })
  const ping = { jsonrpc: '2.0', id: 1, method: 'ping' }

  t.test('a request without a session id is 400', async t => {
    for (const extra of [{}, { 'mcp-session-id': '' }] as Array<Record<string, string>>) {
      const res = await postMcp(ctx.app, ping, { ...mcpHeaders(ctx.token), ...extra })
      t.equal(res.statusCode, 400)
      t.equal(res.json().error.code, -32000)
      t.equal(res.json().id, null)
    }
  })

  t.test('an unknown session id is 404', async t => {
    const res = await postMcp(ctx.app, ping, mcpHeaders(ctx.token, 'x'.repeat(32)))
    t.equal(res.statusCode, 404)
    t.equal(res.json().error.code, -32001)
  })

  t.test("another subject's token cannot use the session: 404 like an unknown id", async t => {
    const session = await openSession(ctx)
    const other = await ctx.issuer.token({ claims: { sub: 'user_456' } })
    const res = await postMcp(ctx.app, ping, mcpHeaders(other, session))
    t.equal(res.statusCode, 404)
    t.equal(res.json().error.code, -32001)
    for (const method of ['GET', 'DELETE'] as const) {
      const r = await ctx.app.inject({ method, url: '/mcp', headers: { ...mcpHeaders(other, session), accept: 'text/event-stream' } })
      t.equal(r.statusCode, 404, method)
    }
    const own = await postMcp(ctx.app, ping, mcpHeaders(ctx.token, session))
    t.equal(own.statusCode, 200, 'the owner still uses it')
  })

  t.test("another subject's attempts do not keep the session alive", async t => {
    const session = await openSession(ctx)
    const other = await ctx.issuer.token({ claims: { sub: 'user_456' } })
    const realNow = Date.now
    t.teardown(() => { Date.now = realNow })
    Date.now = () => realNow() + 700
    t.equal((await postMcp(ctx.app, ping, mcpHeaders(other, session))).statusCode, 404)
    Date.now = () => realNow() + 1400
    t.equal((await postMcp(ctx.app, ping, mcpHeaders(ctx.token, session))).statusCode, 404, 'idle since its owner last used it')
  })

  t.test('DELETE ends the session; afterwards it is 404', async t => {
    const session = await openSession(ctx)
    const del = await ctx.app.inject({ method: 'DELETE', url: '/mcp', headers: mcpHeaders(ctx.token, session, '2025-06-18') })
    t.equal(del.statusCode, 200)
    t.equal(del.body, '')
    const res = await postMcp(ctx.app, ping, mcpHeaders(ctx.token, session))
    t.equal(res.statusCode, 404)
    const again = await ctx.app.inject({ method: 'DELETE', url: '/mcp', headers: mcpHeaders(ctx.token, session) })
    t.equal(again.statusCode, 404)
    const noId = await ctx.app.inject({ method: 'DELETE', url: '/mcp', headers: mcpHeaders(ctx.token) })
    t.equal(noId.statusCode, 400)
  })

  t.test('an idle session expires; a used one does not', async t => {
    const idle = await openSession(ctx)
    const used = await openSession(ctx)
    // Move the clock rather than sleep through the TTL (1 s).
    const realNow = Date.now
    t.teardown(() => { Date.now = realNow })
    Date.now = () => realNow() + 700
    t.equal((await postMcp(ctx.app, ping, mcpHeaders(ctx.token, used))).statusCode, 200)
    Date.now = () => realNow() + 1400
    t.equal((await postMcp(ctx.app, ping, mcpHeaders(ctx.token, used))).statusCode, 200, 'used 0.7 s ago: alive')
    const res = await postMcp(ctx.app, ping, mcpHeaders(ctx.token, idle))
    t.equal(res.statusCode, 404, 'idle for 1.4 s: gone')
    t.equal(res.json().error.code, -32001)
  })
})

t.test('MCP-Protocol-Version header (transports "Protocol Version Header")', async t => {
  const ctx = await buildApp(t, {}, { issuer })
  const session = await openSession(ctx)
  const ping = { jsonrpc: '2.0', id: 1, method: 'ping' }

  t.test('an unsupported version is 400 on POST, GET and DELETE', async t => {
    for (const version of ['2099-01-01', 'banana', '2024-10-07']) {
      const res = await postMcp(ctx.app, ping, mcpHeaders(ctx.token, session, version))
      t.equal(res.statusCode, 400, version)
      t.match(res.json().error.message, /unsupported MCP-Protocol-Version/)
    }
    for (const method of ['GET', 'DELETE'] as const) {
      const res = await ctx.app.inject({ method, url: '/mcp', headers: { ...mcpHeaders(ctx.token, session, '1.0'), accept: 'text/event-stream' } })
      t.equal(res.statusCode, 400, method)
    }
    t.equal((await postMcp(ctx.app, ping, mcpHeaders(ctx.token, session))).statusCode, 200, 'the session survives a bad header')
  })

  t.test('an absent header is accepted', async t => {
    const res = await postMcp(ctx.app, ping, mcpHeaders(ctx.token, session))
    t.equal(res.statusCode, 200)
    t.same(res.json().result, {})
  })

  t.test('an unsupported version on initialize is 400 too', async t => {
    const res = await postMcp(ctx.app, initializeBody(), mcpHeaders(ctx.token, undefined, '2000-01-01'))
    t.equal(res.statusCode, 400)
    t.equal(res.headers['mcp-session-id'], undefined)
  })
})

t.test('Origin (transports "Security Warning": DNS rebinding)', async t => {
  t.test('loopback origins are allowed by default, others refused with 403 before auth', async t => {
    const ctx = await buildApp(t, {}, { issuer })
    for (const origin of ['http://localhost:6274', 'http://127.0.0.1', 'https://[::1]:8443']) {
      const res = await postMcp(ctx.app, initializeBody(), { ...mcpHeaders(ctx.token), origin })
      t.equal(res.statusCode, 200, origin)
      t.equal(res.headers['access-control-allow-origin'], origin)
    }
    for (const origin of ['https://evil.example', 'http://localhost.evil.example', 'null', 'not a url']) {
      // No token at all: the origin check comes first, so the answer is 403, not 401.
      const res = await postMcp(ctx.app, initializeBody(), { ...mcpHeaders(undefined), origin })
      t.equal(res.statusCode, 403, origin)
      t.equal(res.json().error.code, -32000)
      t.equal(res.headers['www-authenticate'], undefined)
      const get = await ctx.app.inject({ method: 'GET', url: '/mcp', headers: { accept: 'text/event-stream', origin } })
      t.equal(get.statusCode, 403)
    }
    const noOrigin = await postMcp(ctx.app, initializeBody(), mcpHeaders(undefined))
    t.equal(noOrigin.statusCode, 401, 'without Origin (a non-browser client) auth decides')
  })

  t.test('ALLOWED_ORIGINS replaces the loopback default', async t => {
    const ctx = await buildApp(t, { ALLOWED_ORIGINS: 'https://app.example.com' }, { issuer })
    const ok = await postMcp(ctx.app, initializeBody(), { ...mcpHeaders(ctx.token), origin: 'https://app.example.com' })
    t.equal(ok.statusCode, 200)
    for (const origin of ['http://localhost:3000', 'https://app.example.com.evil.example', 'http://app.example.com']) {
      const res = await postMcp(ctx.app, initializeBody(), { ...mcpHeaders(ctx.token), origin })
      t.equal(res.statusCode, 403, origin)
    }
  })

  t.test('ALLOWED_ORIGINS=* allows any origin', async t => {
    const ctx = await buildApp(t, { ALLOWED_ORIGINS: '*' }, { issuer })
    const res = await postMcp(ctx.app, initializeBody(), { ...mcpHeaders(ctx.token), origin: 'https://anywhere.example' })
    t.equal(res.statusCode, 200)
  })
})

t.test('Accept (transports "Sending Messages to the Server")', async t => {
  const ctx = await buildApp(t, {}, { issuer })
  const session = await openSession(ctx)
  const ping = { jsonrpc: '2.0', id: 1, method: 'ping' }
  for (const accept of ['application/json', 'text/event-stream', 'text/html', 'application/xml, text/plain']) {
    const res = await postMcp(ctx.app, ping, { ...mcpHeaders(ctx.token, session), accept })
    t.equal(res.statusCode, 406, `POST with Accept: ${accept}`)
    t.equal(res.json().error.code, -32000)
  }
  for (const accept of ['*/*', 'application/*, text/*', 'application/json, text/event-stream;q=0.9']) {
    const res = await postMcp(ctx.app, ping, { ...mcpHeaders(ctx.token, session), accept })
    t.equal(res.statusCode, 200, `POST with Accept: ${accept}`)
  }
  const headers = mcpHeaders(ctx.token, session)
  delete headers.accept
  t.equal((await postMcp(ctx.app, ping, headers)).statusCode, 200, 'no Accept means anything goes (RFC 9110 §12.5.1)')

  for (const accept of ['application/json', 'text/html']) {
    const res = await ctx.app.inject({ method: 'GET', url: '/mcp', headers: { ...mcpHeaders(ctx.token, session), accept } })
    t.equal(res.statusCode, 406, `GET with Accept: ${accept}`)
  }
})

t.test('GET opens one standalone SSE stream per session (transports "Listening for Messages from the Server")', async t => {
  const ctx = await buildApp(t, {}, { issuer })
  const base = await listenLocal(ctx.app)
  const session = await openSession(ctx)
  const headers = { ...mcpHeaders(ctx.token, session, '2025-06-18'), accept: 'text/event-stream', origin: 'http://localhost:6274' }

  const first = new AbortController()
  const res = await fetch(`${base}/mcp`, { headers, signal: first.signal })
  t.equal(res.status, 200)
  t.equal(res.headers.get('content-type'), 'text/event-stream')
  t.equal(res.headers.get('cache-control'), 'no-cache, no-transform')
  t.equal(res.headers.get('access-control-allow-origin'), 'http://localhost:6274', 'hook headers survive the hijack')

  const second = await fetch(`${base}/mcp`, { headers })
  t.equal(second.status, 409)
  // HEAD is not served: it would take the session's one stream and carry nothing.
  const head = await fetch(`${base}/mcp`, { method: 'HEAD', headers })
  t.equal(head.status, 404)
  t.equal(((await second.json()) as { error: { code: number } }).error.code, -32000)

  first.abort()
  await res.body?.cancel().catch(() => {})
  // Once the first stream is gone the session may open another.
  let third: Response | undefined
  for (let i = 0; i < 50 && third?.status !== 200; i++) {
    await new Promise(resolve => setTimeout(resolve, 10))
    third = await fetch(`${base}/mcp`, { headers })
    if (third.status !== 200) await third.body?.cancel()
  }
  t.equal(third?.status, 200)
  // DELETE ends the session and closes its stream.
  const del = await fetch(`${base}/mcp`, { method: 'DELETE', headers: mcpHeaders(ctx.token, session) })
  t.equal(del.status, 200)
  const rest = third?.body === null || third === undefined ? undefined : await readToEnd(third.body.getReader())
  t.equal(rest, '', 'the stream ended, cleanly and empty, with the session')
})

t.test('stateless mode (MCP_STATELESS=true)', async t => {
  const ctx = await buildApp(t, { MCP_STATELESS: 'true' }, { issuer })
  const init = await postMcp(ctx.app, initializeBody(), mcpHeaders(ctx.token))
  t.equal(init.statusCode, 200)
  t.equal(init.headers['mcp-session-id'], undefined)

  const call = await postMcp(ctx.app, toolCall('get_news_sentiment', { ticker: 'AAPL', limit: 2 }), mcpHeaders(ctx.token, undefined, '2025-06-18'))
  t.equal(call.statusCode, 200)
  t.equal(call.json().result.structuredContent.articles.length, 2)
  t.equal(call.headers['mcp-session-id'], undefined)

  // Without a header the version is 2025-03-26, where batches exist.
  const batch = await postMcp(ctx.app, [{ jsonrpc: '2.0', id: 1, method: 'ping' }], mcpHeaders(ctx.token))
  t.same(batch.json(), [{ jsonrpc: '2.0', id: 1, result: {} }])
  // ... and are capped as in a session.
  const over = await postMcp(ctx.app, Array.from({ length: DEFAULT_MAX_BATCH + 1 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'tools/list' })), mcpHeaders(ctx.token))
  t.equal(over.statusCode, 400)
  t.equal(over.json().error.code, -32600)

  for (const method of ['GET', 'DELETE'] as const) {
    const res = await ctx.app.inject({ method, url: '/mcp', headers: { ...mcpHeaders(ctx.token), accept: 'text/event-stream' } })
    t.equal(res.statusCode, 405, method)
    t.equal(res.headers.allow, 'POST')
  }
})

t.test('batches: 2025-03-26 only (2025-06-18 changelog: batching removed)', async t => {
  const ctx = await buildApp(t, {}, { issuer })
  const old = await openSession(ctx, '2025-03-26')
  const oldHeaders = mcpHeaders(ctx.token, old, '2025-03-26')

  t.test('a batch of requests gets an array of responses', async t => {
    const res = await postMcp(ctx.app, [
      { jsonrpc: '2.0', id: 1, method: 'ping' },
      { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } },
      { jsonrpc: '2.0', id: 'r', result: {} },
      { jsonrpc: '2.0', id: 2, method: 'tools/list' },
      { jsonrpc: '2.0', id: 3, method: 'nope' },
      { id: 4, method: 'ping' }
    ], oldHeaders)
    t.equal(res.statusCode, 200)
    const body = res.json() as Array<Record<string, any>>
    t.equal(body.length, 4, 'one response per request and per invalid element; none for notifications and responses')
    t.same(body[0], { jsonrpc: '2.0', id: 1, result: {} })
    t.equal(body[1]?.result.tools[0].name, 'get_news_sentiment')
    t.equal(body[2]?.error.code, -32601)
    t.same(body[3], { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Invalid Request: not a JSON-RPC 2.0 message' } })
  })

  t.test('a batch of notifications only is 202', async t => {
    const res = await postMcp(ctx.app, [{ jsonrpc: '2.0', method: 'notifications/initialized' }, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } }], oldHeaders)
    t.equal(res.statusCode, 202)
    t.equal(res.body, '')
  })

  t.test('an empty batch is -32600 (JSON-RPC §6)', async t => {
    const res = await postMcp(ctx.app, [], oldHeaders)
    t.equal(res.statusCode, 400)
    t.equal(res.json().error.code, -32600)
  })

  t.test(`a batch holds at most MCP_MAX_BATCH messages (default ${DEFAULT_MAX_BATCH})`, async t => {
    const pings = (n: number): unknown[] => Array.from({ length: n }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'ping' }))
    const full = await postMcp(ctx.app, pings(DEFAULT_MAX_BATCH), oldHeaders)
    t.equal(full.statusCode, 200)
    t.equal(full.json().length, DEFAULT_MAX_BATCH)
    const over = await postMcp(ctx.app, pings(DEFAULT_MAX_BATCH + 1), oldHeaders)
    t.equal(over.statusCode, 400)
    t.same(over.json(), { jsonrpc: '2.0', id: null, error: { code: -32600, message: `Invalid Request: a batch may hold at most ${DEFAULT_MAX_BATCH} messages (this one holds ${DEFAULT_MAX_BATCH + 1}); send the rest in further requests` } })
    // The reviewer's reproduction: 20,000 tools/list in one body.
    const flood = await postMcp(ctx.app, Array.from({ length: 20_000 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'tools/list' })), oldHeaders)
    t.equal(flood.statusCode, 400)
    t.ok(flood.body.length < 300, `refused in ${flood.body.length} bytes`)
  })

  t.test('2025-06-18 and later refuse batches', async t => {
    for (const version of ['2025-06-18', LATEST]) {
      const session = await openSession(ctx, version)
      const res = await postMcp(ctx.app, [{ jsonrpc: '2.0', id: 1, method: 'ping' }], mcpHeaders(ctx.token, session, version))
      t.equal(res.statusCode, 400)
      t.equal(res.json().error.code, -32600)
      t.match(res.json().error.message, version)
    }
  })
})

t.test("a batch's answer is bounded: past maxBatchAnswerBytes no further message runs, each left gets an error", async t => {
  const ctx = await buildMcpApp(t, { maxBatchAnswerBytes: 2500 }, { issuer })
  let calls = 0
  ctx.app.mcpTool({ name: 'kilobyte', description: 'Returns 1000 characters', inputSchema: z.object({}) }, async () => {
    calls++
    await new Promise(resolve => setImmediate(resolve))
    return { content: [{ type: 'text', text: 'k'.repeat(1000) }] }
  })
  const old = await initSession(ctx.app, ctx.token, '2025-03-26')
  const res = await postMcp(ctx.app, Array.from({ length: 20 }, (_, i) => toolCall('kilobyte', {}, i)), mcpHeaders(ctx.token, old))
  t.equal(res.statusCode, 200)
  const body = res.json() as Array<{ id: number, result?: unknown, error?: { code: number, message: string } }>
  t.same(body.map(r => r.id), Array.from({ length: 20 }, (_, i) => i), 'one answer per request, in order')
  const kept = body.filter(r => r.result !== undefined)
  const refused = body.filter(r => r.error !== undefined)
  t.equal(kept.length, 2, 'two answers of about 1 kB fit in 2,500 bytes')
  t.equal(refused.length, 18)
  for (const r of refused) t.same(r.error, { code: -32000, message: "Response too large: this batch's answers would exceed 2500 bytes; send this request on its own" })
  t.ok(calls <= 6, `the batch stopped: ${calls} of 20 calls ran (two kept, at most four in flight when it filled)`)
  t.ok(Buffer.byteLength(res.body) < 2500 + 20 * 150, `the answer is ${Buffer.byteLength(res.body)} bytes`)
})

t.test('session caps', async t => {
  t.test("a subject at its cap loses its own oldest session; others' survive", async t => {
    const ctx = await buildApp(t, { MCP_MAX_SESSIONS_PER_SUBJECT: '2' }, { issuer })
    const other = await ctx.issuer.token({ claims: { sub: 'user_other' } })
    const theirs = await initSession(ctx.app, other)
    const a = await initSession(ctx.app, ctx.token)
    const b = await initSession(ctx.app, ctx.token)
    const c = await initSession(ctx.app, ctx.token)
    const ping = { jsonrpc: '2.0', id: 1, method: 'ping' }
    t.equal((await postMcp(ctx.app, ping, mcpHeaders(ctx.token, a))).statusCode, 404, 'the oldest is evicted')
    t.equal((await postMcp(ctx.app, ping, mcpHeaders(ctx.token, b))).statusCode, 200)
    t.equal((await postMcp(ctx.app, ping, mcpHeaders(ctx.token, c))).statusCode, 200)
    t.equal((await postMcp(ctx.app, ping, mcpHeaders(other, theirs))).statusCode, 200)
  })

  t.test('a full server answers 503 with Retry-After', async t => {
    const ctx = await buildApp(t, { MCP_MAX_SESSIONS: '2' }, { issuer })
    await initSession(ctx.app, ctx.token)
    await initSession(ctx.app, await ctx.issuer.token({ claims: { sub: 'user_2' } }))
    const res = await postMcp(ctx.app, initializeBody(), mcpHeaders(await ctx.issuer.token({ claims: { sub: 'user_3' } })))
    t.equal(res.statusCode, 503)
    t.equal(res.headers['retry-after'], '60')
    t.equal(res.json().error.code, -32000)
    t.equal(res.headers['mcp-session-id'], undefined)
  })
})

t.test('progress streams the answer as SSE (basic/utilities "Progress")', async t => {
  const ctx = await buildMcpApp(t, {}, { issuer })
  const session = await initSession(ctx.app, ctx.token)
  const headers = mcpHeaders(ctx.token, session, '2025-06-18')

  t.test('with a progressToken: progress notifications, then the result', async t => {
    const res = await postMcp(ctx.app, toolCall('progress', { steps: 3 }, 11, { progressToken: 'tok-1' }), headers)
    t.equal(res.statusCode, 200)
    t.equal(res.headers['content-type'], 'text/event-stream')
    const messages = sseMessages(res.body)
    t.same(messages, [
      { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'tok-1', progress: 1 } },
      { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'tok-1', progress: 2 } },
      { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'tok-1', progress: 3, total: 3, message: 'done' } },
      { jsonrpc: '2.0', id: 11, result: { content: [{ type: 'text', text: '3 steps' }] } }
    ])
    // Resumable (transports "Resumability and Redelivery"): a priming event, then every event with an id of its stream.
    t.match(res.body, /^id: ([A-Za-z0-9_-]+)-0\ndata: \n\nid: \1-1\nevent: message\ndata: /)
  })

  t.test('a numeric progressToken works too', async t => {
    const res = await postMcp(ctx.app, toolCall('progress', { steps: 1 }, 12, { progressToken: 0 }), headers)
    t.same(sseMessages(res.body)[0]?.params, { progressToken: 0, progress: 1, total: 1, message: 'done' })
  })

  t.test('without a progressToken (or with a malformed one) the same call is plain JSON', async t => {
    for (const meta of [undefined, { progressToken: { nested: true } }]) {
      const res = await postMcp(ctx.app, toolCall('progress', { steps: 3 }, 13, meta), headers)
      t.match(res.headers['content-type'], /^application\/json/)
      t.same(res.json(), { jsonrpc: '2.0', id: 13, result: { content: [{ type: 'text', text: '3 steps' }] } })
    }
  })

  t.test('progress sent after the tool returned is dropped, not a crash', async t => {
    const res = await postMcp(ctx.app, toolCall('late_progress', {}, 15, { progressToken: 'late' }), headers)
    t.match(res.headers['content-type'], /^application\/json/)
    t.same(res.json().result.content, [{ type: 'text', text: 'returned early' }])
    await ctx.probe.lateProgressSent
    const after = await postMcp(ctx.app, { jsonrpc: '2.0', id: 16, method: 'ping' }, headers)
    t.equal(after.statusCode, 200, 'the server is still serving')
  })

  t.test('a batch runs at most 4 messages at a time', async t => {
    let running = 0
    let most = 0
    ctx.app.mcpTool({ name: 'overlap', description: 'Counts how many of its calls run at once', inputSchema: z.object({}) }, async () => {
      most = Math.max(most, ++running)
      await new Promise(resolve => setTimeout(resolve, 5))
      running--
      return { content: [{ type: 'text', text: 'done' }] }
    })
    const old = await initSession(ctx.app, ctx.token, '2025-03-26')
    const res = await postMcp(ctx.app, Array.from({ length: 12 }, (_, i) => toolCall('overlap', {}, i)), mcpHeaders(ctx.token, old))
    t.equal(res.statusCode, 200)
    t.same((res.json() as Array<{ id: number }>).map(r => r.id), Array.from({ length: 12 }, (_, i) => i), 'every answer, in the batch\'s order')
    t.equal(most, 4, 'four at a time, not all twelve')
  })

  t.test('a batch never streams (2025-03-26)', async t => {
    const old = await initSession(ctx.app, ctx.token, '2025-03-26')
    const res = await postMcp(ctx.app, [toolCall('progress', { steps: 2 }, 14, { progressToken: 'b' })], mcpHeaders(ctx.token, old))
    t.match(res.headers['content-type'], /^application\/json/)
    t.equal(res.json()[0].result.content[0].text, '2 steps')
  })
})

t.test('cancellation (basic/utilities "Cancellation")', async t => {
  t.test('notifications/cancelled aborts the named request of the session', async t => {
    const ctx = await buildMcpApp(t, {}, { issuer })
    const session = await initSession(ctx.app, ctx.token)
    const headers = mcpHeaders(ctx.token, session, '2025-06-18')
    // Cancellations that match nothing change nothing.
    for (const params of [{ requestId: 77 }, { requestId: { id: 1 } }, {}]) {
      t.equal((await postMcp(ctx.app, { jsonrpc: '2.0', method: 'notifications/cancelled', params }, headers)).statusCode, 202)
    }
    const call = postMcp(ctx.app, toolCall('wait_for_cancel', {}, 'call-1', { progressToken: 'p' }), headers)
    const signal = await ctx.probe.started
    t.equal(signal.aborted, false)
    for (const params of [{ requestId: 'other' }, { requestId: { id: 'call-1' } }]) {
      await postMcp(ctx.app, { jsonrpc: '2.0', method: 'notifications/cancelled', params }, headers)
    }
    t.equal(signal.aborted, false, 'other ids do not cancel it')
    const cancel = await postMcp(ctx.app, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'call-1', reason: 'user' } }, headers)
    t.equal(cancel.statusCode, 202)
    await ctx.probe.aborted
    t.equal(signal.aborted, true)
    const res = await call
    // The tool's progress after the abort is dropped; the stream carries the progress before it and the final answer.
    const messages = sseMessages(res.body)
    t.equal(messages.length, 2)
    t.equal(messages[0]?.method, 'notifications/progress')
    t.equal(messages[1]?.id, 'call-1')
    t.equal(ctx.app.mcpSessions.get(session)?.inflight?.size, 0, 'the finished call is forgotten')
  })

  t.test('a request id reused while the first call runs stays cancellable', async t => {
    const ctx = await buildMcpApp(t, {}, { issuer })
    const session = await initSession(ctx.app, ctx.token)
    const headers = mcpHeaders(ctx.token, session)
    const first = postMcp(ctx.app, toolCall('hold', {}, 'dup'), headers)
    await ctx.probe.holding
    const second = postMcp(ctx.app, toolCall('wait_for_cancel', {}, 'dup'), headers)
    const signal = await ctx.probe.started
    ctx.probe.release()
    t.equal((await first).json().result.content[0].text, 'held and finished')
    await postMcp(ctx.app, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'dup' } }, headers)
    t.equal(signal.aborted, true, 'the running call with that id was cancelled')
    t.equal((await second).json().result.isError, true)
  })

  t.test('a cancel that comes before the tool first looks at its signal still counts', async t => {
    // The transport makes the AbortSignal only when a tool reads it (a cache hit never does).
    const ctx = await buildMcpApp(t, {}, { issuer })
    const session = await initSession(ctx.app, ctx.token)
    const headers = mcpHeaders(ctx.token, session)
    const call = postMcp(ctx.app, toolCall('cancel_then_look', {}, 'late'), headers)
    await ctx.probe.holding
    await postMcp(ctx.app, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'late' } }, headers)
    ctx.probe.release()
    t.equal((await call).json().result.content[0].text, 'signal aborted: true')
  })

  t.test('ending the session aborts its calls in flight', async t => {
    const ctx = await buildMcpApp(t, {}, { issuer })
    const session = await initSession(ctx.app, ctx.token)
    const call = postMcp(ctx.app, toolCall('wait_for_cancel', {}, 1), mcpHeaders(ctx.token, session))
    const signal = await ctx.probe.started
    const del = await ctx.app.inject({ method: 'DELETE', url: '/mcp', headers: mcpHeaders(ctx.token, session) })
    t.equal(del.statusCode, 200)
    t.equal(signal.aborted, true)
    t.equal((await call).json().result.isError, true)
  })

  t.test('a client that disconnects aborts its call', async t => {
    const ctx = await buildMcpApp(t, {}, { issuer })
    const base = await listenLocal(ctx.app)
    const session = await initSession(ctx.app, ctx.token)
    const controller = new AbortController()
    const res = await fetch(`${base}/mcp`, {
      method: 'POST',
      headers: mcpHeaders(ctx.token, session, '2025-06-18'),
      body: JSON.stringify(toolCall('wait_for_cancel', {}, 1, { progressToken: 1 })),
      signal: controller.signal
    })
    t.equal(res.headers.get('content-type'), 'text/event-stream')
    const signal = await ctx.probe.started
    controller.abort()
    await ctx.probe.aborted
    t.equal(signal.aborted, true)
  })

  t.test('a client gone before the tool first looks at its signal: the signal is aborted', async t => {
    const ctx = await buildMcpApp(t, {}, { issuer })
    const base = await listenLocal(ctx.app)
    const session = await initSession(ctx.app, ctx.token)
    const controller = new AbortController()
    const gone = fetch(`${base}/mcp`, {
      method: 'POST',
      headers: mcpHeaders(ctx.token, session, '2025-06-18'),
      body: JSON.stringify(toolCall('cancel_then_look', {}, 1)),
      signal: controller.signal
    }).catch((err: Error) => err.name)
    await ctx.probe.holding
    controller.abort()
    t.equal(await gone, 'AbortError')
    await new Promise(resolve => setTimeout(resolve, 50)) // the server sees the socket close
    ctx.probe.release()
    t.equal(await ctx.probe.looked, true)
  })

  t.test('stateless: calls run without a session and cancellations are accepted', async t => {
    const ctx = await buildMcpApp(t, { stateless: true }, { issuer })
    const headers = mcpHeaders(ctx.token)
    const res = await postMcp(ctx.app, toolCall('progress', { steps: 2 }, 1, { progressToken: 5 }), headers)
    t.equal(sseMessages(res.body).length, 3)
    t.equal((await postMcp(ctx.app, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1 } }, headers)).statusCode, 202)
  })
})

t.test('tool failures and transport errors do not leak internals', async t => {
  const ctx = await buildMcpApp(t, {}, { issuer })
  const session = await initSession(ctx.app, ctx.token)
  const headers = mcpHeaders(ctx.token, session)

  t.test('a ToolError is an isError result with its message', async t => {
    const res = await postMcp(ctx.app, toolCall('fail_tool', {}), headers)
    t.same(res.json().result, { content: [{ type: 'text', text: 'the upstream said no' }], isError: true })
  })

  t.test('an unexpected error is a generic isError result, logged', async t => {
    const res = await postMcp(ctx.app, toolCall('crash', {}), headers)
    t.equal(res.json().result.isError, true)
    t.match(res.json().result.content[0].text, /crash failed unexpectedly/)
    t.notOk(leaksInternals(res.body))
    t.ok(ctx.logs.some(line => line.includes('"tool failed"') && line.includes('secret internals')))
  })

  t.test('a failure in a hook is 500 with a JSON-RPC internal error', async t => {
    const res = await postMcp(ctx.app, { jsonrpc: '2.0', id: 1, method: 'ping' }, { ...headers, 'x-test-fault': 'crash' })
    t.equal(res.statusCode, 500)
    t.same(res.json(), { jsonrpc: '2.0', id: null, error: { code: -32603, message: 'Internal error' } })
    t.notOk(leaksInternals(res.body))
    t.ok(ctx.logs.some(line => line.includes('MCP transport error')))
  })

  t.test('a 4xx error from a hook keeps its status', async t => {
    const res = await postMcp(ctx.app, { jsonrpc: '2.0', id: 1, method: 'ping' }, { ...headers, 'x-test-fault': 'teapot' })
    t.equal(res.statusCode, 418)
    t.equal(res.json().error.code, -32600)
  })

  t.test('a 429 from a hook (the rate limiter) keeps its status and message', async t => {
    const res = await postMcp(ctx.app, { jsonrpc: '2.0', id: 1, method: 'ping' }, { ...headers, 'x-test-fault': 'busy' })
    t.equal(res.statusCode, 429)
    t.same(res.json(), { jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Rate limit exceeded, retry in 1 minute' } })
  })
})

t.test('the endpoint answers with and without a trailing slash', async t => {
  const ctx = await buildMcpApp(t, {}, { issuer })
  const res = await ctx.app.inject({ method: 'POST', url: '/mcp/', headers: mcpHeaders(ctx.token), payload: initializeBody() })
  t.equal(res.statusCode, 200)
  t.type(res.headers['mcp-session-id'], 'string')
})

t.test('without auth (auth: false) sessions belong to an anonymous subject', async t => {
  const ctx = await buildMcpApp(t, { auth: false, path: '/rpc' }, { issuer })
  const res = await ctx.app.inject({ method: 'POST', url: '/rpc', headers: mcpHeaders(undefined), payload: initializeBody() })
  t.equal(res.statusCode, 200)
  const session = res.headers['mcp-session-id'] as string
  t.equal(ctx.app.mcpSessions.get(session)?.subject, 'anonymous')
  const call = await ctx.app.inject({ method: 'POST', url: '/rpc', headers: mcpHeaders(undefined, session), payload: toolCall('echo', { text: 'hi' }) })
  t.same(call.json().result.structuredContent, { text: 'hi' })
})

t.test('SSE keep-alive comments and shutdown', async t => {
  const ctx = await buildMcpApp(t, { keepAliveMs: 20 }, { issuer })
  const base = await listenLocal(ctx.app)
  const withStream = await initSession(ctx.app, ctx.token)
  await initSession(ctx.app, ctx.token) // a session without a stream
  const stream = await fetch(`${base}/mcp`, { headers: { ...mcpHeaders(ctx.token, withStream), accept: 'text/event-stream' } })
  t.equal(stream.status, 200)
  const reader = (stream.body as ReadableStream<Uint8Array>).getReader()
  const first = await reader.read()
  t.equal(Buffer.from(first.value ?? []).toString(), ': keep-alive\n\n', 'an idle stream gets comments')

  const session = await initSession(ctx.app, ctx.token)
  const inflight = fetch(`${base}/mcp`, { method: 'POST', headers: mcpHeaders(ctx.token, session), body: JSON.stringify(toolCall('hold', {}, 'h')) })
  await ctx.probe.holding
  const closing = ctx.app.close()
  // The standalone stream ends cleanly (no reset) so the server can stop.
  t.match(await readToEnd(reader), /^(: keep-alive\n\n)*$/, 'nothing but comments before the end')
  ctx.probe.release()
  const res = await inflight
  t.equal(res.status, 200)
  t.same(((await res.json()) as { result: unknown }).result, { content: [{ type: 'text', text: 'held and finished' }] })
  await closing
  t.equal(ctx.app.mcpSessions.size, 0, 'every session ended at shutdown')
})

t.test('plugin options are validated at registration', async t => {
  const cases: Array<[Parameters<typeof mcp>[1], RegExp]> = [
    [{ path: 'mcp', auth: false }, /^mcp: "path" must start with \//],
    [{ maxSessions: 0, auth: false }, /^mcp: "maxSessions" must be a positive integer/],
    [{ keepAliveMs: 1.5, auth: false }, /^mcp: "keepAliveMs" must be a positive integer/],
    [{}, /^mcp: register the mcp-auth plugin first/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(mcp, options).ready() }, message)
  }
})
