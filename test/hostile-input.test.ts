import t, { type Test } from 'tap'
import { request } from 'node:http'
import { connect } from 'node:net'
import { timeoutOptions } from '../app.js'
import { DEFAULT_MAX_BATCH } from '../plugins/config.js'
import { buildApp, initializeBody, openSession, MCP_HEADERS } from './helpers/build-app.js'
import { leaksInternals, listenLocal, mcpHeaders, rawHttp, rawStatus, toolCall } from './helpers/mcp-app.js'

/**
 * Hostile and malformed input, row by row: each gets its exact status and a
 * body check, never a 5xx, never a stack trace or a source path, and the
 * server keeps serving afterwards.
 */

const BODY_LIMIT = 1024
/** Server timeouts as REQUEST_TIMEOUT_MS / HEADERS_TIMEOUT_MS would set them, short enough for slow-client rows. */
const TIMEOUT_MS = 1000

const ctx = await buildApp(t, { MCP_BODY_LIMIT: String(BODY_LIMIT) }, { server: timeoutOptions({ requestTimeoutMs: TIMEOUT_MS, headersTimeoutMs: TIMEOUT_MS }) })
const base = await listenLocal(ctx.app)
const { host } = new URL(base)
const v0326 = await openSession(ctx, '2025-03-26')
const v0618 = await openSession(ctx, '2025-06-18')
const v1125 = await openSession(ctx, '2025-11-25')
const ok0618 = mcpHeaders(ctx.token, v0618, '2025-06-18')

interface Answer { status: number, body: string, headers: Record<string, unknown> }
interface Row {
  name: string
  send: () => Promise<Answer>
  status: number
  check?: (answer: Answer, t: Test) => void
}

async function post (payload: string | Buffer, headers: Record<string, string> = ok0618): Promise<Answer> {
  const res = await ctx.app.inject({ method: 'POST', url: '/mcp', headers, payload })
  return { status: res.statusCode, body: res.body, headers: res.headers }
}

async function postJson (message: unknown, headers: Record<string, string> = ok0618): Promise<Answer> {
  return await post(JSON.stringify(message), headers)
}

/** A raw HTTP/1.1 request to POST /mcp, for what inject cannot send (repeated headers, bytes Node refuses, sizes over its header limit). */
async function raw (headerLines: string[], body = ''): Promise<Answer> {
  const head = ['POST /mcp HTTP/1.1', `Host: ${host}`, 'Connection: close', ...headerLines, `Content-Length: ${Buffer.byteLength(body)}`]
  const answer = await rawHttp(base, Buffer.concat([Buffer.from(head.join('\r\n') + '\r\n\r\n', 'latin1'), Buffer.from(body)]))
  const split = answer.indexOf('\r\n\r\n')
  return { status: rawStatus(answer), body: split < 0 ? '' : answer.slice(split + 4), headers: {} }
}

/** POST /mcp (a ping in the 2025-06-18 session) with the request target exactly as given: encoded paths, the absolute form. */
async function postTarget (path: string): Promise<Answer> {
  const { hostname, port } = new URL(base)
  return await new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, method: 'POST', path, headers: ok0618 }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', chunk => { body += chunk as string })
      res.on('end', () => resolve({ status: res.statusCode as number, body, headers: res.headers }))
    })
    req.on('error', reject)
    req.end(JSON.stringify(ping(41)))
  })
}

/** Writes `head` on a connection and then nothing: what a slow client does. Resolves once the server closes it. */
async function stall (head: string): Promise<Answer> {
  const { hostname, port } = new URL(base)
  return await new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    const chunks: Buffer[] = []
    // Past the timeout and one checking period: a server that waits for ever gets status 0.
    const giveUp = setTimeout(() => socket.destroy(), TIMEOUT_MS * 4)
    socket.on('data', chunk => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('close', () => {
      clearTimeout(giveUp)
      const answer = Buffer.concat(chunks).toString('latin1')
      resolve({ status: rawStatus(answer), body: answer.slice(answer.indexOf('\r\n\r\n') + 4), headers: {} })
    })
    socket.write(head)
  })
}

function rateLimited (answer: Answer, t: Test): void {
  t.same(JSON.parse(answer.body), { jsonrpc: '2.0', id: 41, result: {} })
  t.match(answer.headers['x-ratelimit-remaining'], /^\d+$/, 'counted by the rate limiter')
}

function rpcErrorCode (code: number, id: unknown = null) {
  return (answer: Answer, t: Test): void => {
    const body = JSON.parse(answer.body) as { jsonrpc: string, id: unknown, error: { code: number, message: string } }
    t.equal(body.jsonrpc, '2.0')
    t.equal(body.id, id)
    t.equal(body.error.code, code)
    t.type(body.error.message, 'string')
  }
}

function authError (error: string) {
  return (answer: Answer, t: Test): void => {
    t.equal((JSON.parse(answer.body) as { error: string }).error, error)
  }
}

const ping = (id: unknown = 1): Record<string, unknown> => ({ jsonrpc: '2.0', id, method: 'ping' })
const bad = { ticker: 'DROP TABLE;' }
const auth = `Authorization: Bearer ${ctx.token}`
const jwksHitsBefore = ctx.issuer.jwksHits

const rows: Row[] = [
  // JSON-RPC §5.1: a body that does not parse is -32700, one that is not a request -32600.
  { name: 'malformed JSON', send: () => post('{"jsonrpc": "2.0", "id": 1,'), status: 400, check: rpcErrorCode(-32700) },
  { name: 'empty body with Content-Type JSON', send: () => post(''), status: 400, check: rpcErrorCode(-32700) },
  { name: 'trailing garbage after JSON', send: () => post('{"jsonrpc":"2.0","id":1,"method":"ping"} x'), status: 400, check: rpcErrorCode(-32700) },
  { name: 'valid JSON, not JSON-RPC', send: () => postJson({ hello: 'world' }), status: 400, check: rpcErrorCode(-32600) },
  { name: 'null', send: () => post('null'), status: 400, check: rpcErrorCode(-32600) },
  { name: 'a string', send: () => post('"ping"'), status: 400, check: rpcErrorCode(-32600) },
  { name: 'a number', send: () => post('42'), status: 400, check: rpcErrorCode(-32600) },
  { name: 'jsonrpc 1.0', send: () => postJson({ jsonrpc: '1.0', id: 1, method: 'ping' }), status: 400, check: rpcErrorCode(-32600) },
  { name: 'method not a string', send: () => postJson({ jsonrpc: '2.0', id: 1, method: 42 }), status: 400, check: rpcErrorCode(-32600) },
  { name: 'neither method nor result', send: () => postJson({ jsonrpc: '2.0', id: 'lonely' }), status: 400, check: rpcErrorCode(-32600) },
  // MCP basic protocol "Requests": the id MUST NOT be null; and it is a string or a number.
  { name: 'id null', send: () => postJson(ping(null)), status: 400, check: rpcErrorCode(-32600) },
  { name: 'id an object', send: () => postJson(ping({ id: 1 })), status: 400, check: rpcErrorCode(-32600) },
  { name: 'id a boolean', send: () => postJson(ping(true)), status: 400, check: rpcErrorCode(-32600) },
  { name: 'params an array', send: () => postJson({ jsonrpc: '2.0', id: 1, method: 'ping', params: [1, 2] }), status: 400, check: rpcErrorCode(-32600) },
  { name: 'params a string', send: () => postJson({ jsonrpc: '2.0', id: 1, method: 'ping', params: 'x' }), status: 400, check: rpcErrorCode(-32600) },
  // Batches: 2025-03-26 only.
  { name: 'empty array (2025-06-18)', send: () => post('[]'), status: 400, check: rpcErrorCode(-32600) },
  { name: 'empty array (2025-03-26)', send: () => post('[]', mcpHeaders(ctx.token, v0326)), status: 400, check: rpcErrorCode(-32600) },
  { name: 'batch (2025-06-18)', send: () => postJson([ping(1), ping(2)]), status: 400, check: rpcErrorCode(-32600) },
  { name: 'batch (2025-11-25)', send: () => postJson([ping(1)], mcpHeaders(ctx.token, v1125, '2025-11-25')), status: 400, check: rpcErrorCode(-32600) },
  {
    name: 'batch of junk (2025-03-26)',
    send: () => postJson([null, 1, 'x', [], ping(7)], mcpHeaders(ctx.token, v0326)),
    status: 200,
    check: (a, t) => {
      const body = JSON.parse(a.body) as Array<{ id: unknown, error?: { code: number }, result?: unknown }>
      t.equal(body.length, 5)
      t.same(body.slice(0, 4).map(r => [r.id, r.error?.code]), [[null, -32600], [null, -32600], [null, -32600], [null, -32600]])
      t.same(body[4], { jsonrpc: '2.0', id: 7, result: {} })
    }
  },
  // Issue 8: batches are capped (and each message is rate-limited; see test/plugins/rate-limit.test.ts).
  { name: `batch of ${DEFAULT_MAX_BATCH + 1} pings (2025-03-26)`, send: () => postJson(Array.from({ length: DEFAULT_MAX_BATCH + 1 }, (_, i) => ping(i)), mcpHeaders(ctx.token, v0326)), status: 400, check: rpcErrorCode(-32600) },
  { name: `batch of ${DEFAULT_MAX_BATCH + 1} junk items (2025-03-26)`, send: () => postJson(Array.from({ length: DEFAULT_MAX_BATCH + 1 }, () => 0), mcpHeaders(ctx.token, v0326)), status: 400, check: rpcErrorCode(-32600) },
  // Issue 8: the rate limiter sees the route the router matched, however the target is spelt.
  { name: 'encoded path /%6Dcp', send: () => postTarget('/%6Dcp'), status: 200, check: rateLimited },
  { name: 'encoded path /m%63p', send: () => postTarget('/m%63p'), status: 200, check: rateLimited },
  { name: 'absolute-form target http://host/mcp', send: () => postTarget(`${base}/mcp`), status: 200, check: rateLimited },
  // Issue 8: a client's self-description is cut to 64 characters.
  {
    name: 'clientInfo name of 700 characters',
    send: () => postJson({ ...initializeBody(), params: { protocolVersion: '2025-06-18', clientInfo: { name: 'C'.repeat(700), version: '1' } } }, { ...MCP_HEADERS, authorization: `Bearer ${ctx.token}` }),
    status: 200,
    check: (_a, t) => {
      const opened = ctx.logs.filter(line => line.includes('C'.repeat(64)))
      t.equal(opened.length, 1, 'logged once')
      t.notOk((opened[0] as string).includes('C'.repeat(65)), 'with 64 characters of the name')
    }
  },
  // Issue 8: slow clients are cut off (REQUEST_TIMEOUT_MS, HEADERS_TIMEOUT_MS).
  { name: 'body declaring 1,000 bytes (under the 1 kB limit), sending 10', send: () => stall(`POST /mcp HTTP/1.1\r\nHost: ${host}\r\n${auth}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"jsonrpc"`), status: 408 },
  { name: 'headers that never end', send: () => stall(`POST /mcp HTTP/1.1\r\nHost: ${host}\r\n${auth}\r\nX-Slow: a`), status: 408 },
  // Media types (MCP messages are UTF-8 JSON).
  { name: 'Content-Type text/plain', send: () => post(JSON.stringify(ping()), { ...ok0618, 'content-type': 'text/plain' }), status: 415, check: rpcErrorCode(-32000) },
  { name: 'Content-Type form-urlencoded', send: () => post('a=1', { ...ok0618, 'content-type': 'application/x-www-form-urlencoded' }), status: 415, check: rpcErrorCode(-32000) },
  { name: 'Content-Type malformed', send: () => post(JSON.stringify(ping()), { ...ok0618, 'content-type': 'json' }), status: 415, check: rpcErrorCode(-32000) },
  { name: 'no Content-Type, with a body', send: () => raw([auth, `Mcp-Session-Id: ${v0618}`, 'Accept: application/json, text/event-stream'], JSON.stringify(ping())), status: 415, check: rpcErrorCode(-32000) },
  { name: 'no Content-Type, no body', send: () => raw([auth, `Mcp-Session-Id: ${v0618}`, 'Accept: application/json, text/event-stream']), status: 400, check: rpcErrorCode(-32600) },
  { name: 'Content-Type with a charset', send: () => post(JSON.stringify(ping(3)), { ...ok0618, 'content-type': 'application/json; charset=utf-8' }), status: 200, check: (a, t) => t.same(JSON.parse(a.body), { jsonrpc: '2.0', id: 3, result: {} }) },
  // Accept (transports "Sending Messages to the Server").
  { name: 'Accept text/html', send: () => postJson(ping(), { ...ok0618, accept: 'text/html' }), status: 406, check: rpcErrorCode(-32000) },
  { name: 'Accept application/json only', send: () => postJson(ping(), { ...ok0618, accept: 'application/json' }), status: 406, check: rpcErrorCode(-32000) },
  // Size.
  { name: 'oversized body', send: () => postJson({ ...ping(), params: { pad: 'x'.repeat(BODY_LIMIT) } }), status: 413, check: rpcErrorCode(-32000) },
  { name: 'deeply nested params within the limit', send: () => post(`{"jsonrpc":"2.0","id":5,"method":"ping","params":${'{"a":'.repeat(150)}1${'}'.repeat(150)}}`), status: 200, check: (a, t) => t.same(JSON.parse(a.body), { jsonrpc: '2.0', id: 5, result: {} }) },
  { name: 'deeply nested arrays within the limit', send: () => post(`${'['.repeat(400)}${']'.repeat(400)}`), status: 400, check: rpcErrorCode(-32600) },
  // Methods, tools and arguments.
  { name: 'unknown method', send: () => postJson({ jsonrpc: '2.0', id: 1, method: 'sampling/createMessage' }), status: 200, check: rpcErrorCode(-32601, 1) },
  { name: 'method __proto__', send: () => postJson({ jsonrpc: '2.0', id: 1, method: '__proto__' }), status: 200, check: rpcErrorCode(-32601, 1) },
  { name: 'unknown tool', send: () => postJson(toolCall('rm_rf', {}, 1)), status: 200, check: rpcErrorCode(-32602, 1) },
  { name: 'tool name not a string', send: () => postJson({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: ['get_news_sentiment'] } }), status: 200, check: rpcErrorCode(-32602, 1) },
  { name: 'tool name toString', send: () => postJson(toolCall('toString', {}, 1)), status: 200, check: rpcErrorCode(-32602, 1) },
  { name: 'arguments failing the schema (2025-06-18)', send: () => postJson(toolCall('get_news_sentiment', bad, 1)), status: 200, check: rpcErrorCode(-32602, 1) },
  {
    // SEP-1303: from 2025-11-25 an input validation error is a tool execution error.
    name: 'arguments failing the schema (2025-11-25)',
    send: () => postJson(toolCall('get_news_sentiment', bad, 1), mcpHeaders(ctx.token, v1125, '2025-11-25')),
    status: 200,
    check: (a, t) => {
      const body = JSON.parse(a.body) as { result: { isError: boolean, content: Array<{ text: string }> } }
      t.equal(body.result.isError, true)
      t.match(body.result.content[0]?.text, /Invalid arguments/)
    }
  },
  { name: 'a lone surrogate as ticker', send: () => post('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_news_sentiment","arguments":{"ticker":"\\ud800"}}}'), status: 200, check: rpcErrorCode(-32602, 1) },
  // Prototype pollution: secure-json-parse refuses __proto__ keys; constructor keys stay plain data.
  { name: '__proto__ key in the body', send: () => post('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"get_news_sentiment","arguments":{"ticker":"AAPL","__proto__":{"polluted":"yes"}}}}'), status: 400, check: rpcErrorCode(-32700) },
  { name: 'nested __proto__ key', send: () => post('{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":{"__proto__":{"polluted":"yes"}}}}'), status: 400, check: rpcErrorCode(-32700) },
  { name: 'constructor.prototype key', send: () => post('{"jsonrpc":"2.0","id":1,"method":"ping","params":{"constructor":{"prototype":{"polluted":"yes"}}}}'), status: 200, check: (a, t) => t.same(JSON.parse(a.body).result, {}) },
  // Headers.
  { name: 'unsupported MCP-Protocol-Version', send: () => postJson(ping(), { ...ok0618, 'mcp-protocol-version': '../../etc/passwd' }), status: 400, check: rpcErrorCode(-32000) },
  { name: '8 kB session id', send: () => postJson(ping(), mcpHeaders(ctx.token, 's'.repeat(8192))), status: 404, check: rpcErrorCode(-32001) },
  { name: '60 kB header value (over Node\'s header limit)', send: () => raw([auth, `X-Padding: ${'a'.repeat(60 * 1024)}`, 'Content-Type: application/json'], JSON.stringify(ping())), status: 431 },
  { name: 'binary (obs-text) bytes in the session id', send: () => raw([auth, 'Content-Type: application/json', 'Accept: application/json, text/event-stream', 'Mcp-Session-Id: \xff\xfe\x80\x81'], JSON.stringify(ping())), status: 404, check: rpcErrorCode(-32001) },
  { name: 'control bytes in a header value', send: () => raw([auth, 'Content-Type: application/json', 'X-Evil: a\x01\x7fb'], JSON.stringify(ping())), status: 400 },
  { name: 'Content-Length with Transfer-Encoding (smuggling)', send: () => raw([auth, 'Content-Type: application/json', 'Transfer-Encoding: chunked'], '0\r\n\r\n'), status: 400 },
  // Credentials (RFC 6750).
  { name: 'no Authorization', send: () => postJson(ping(), mcpHeaders(undefined, v0618)), status: 401, check: authError('invalid_request') },
  { name: 'Basic credentials', send: () => postJson(ping(), { ...ok0618, authorization: 'Basic dXNlcjpwYXNz' }), status: 401, check: authError('invalid_request') },
  { name: 'a 100 kB bearer token', send: () => postJson(ping(), { ...ok0618, authorization: `Bearer ${'A'.repeat(100 * 1024)}` }), status: 401, check: authError('invalid_token') },
  { name: 'a 100 kB JWT-shaped token', send: () => postJson(ping(), { ...ok0618, authorization: `Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6Im5vcGUifQ.${'A'.repeat(100 * 1024)}.sig` }), status: 401, check: authError('invalid_token') },
  { name: 'binary bytes in the token', send: () => raw(['Authorization: Bearer \xff\xfe.\x80.\x81', 'Content-Type: application/json', 'Accept: application/json, text/event-stream', `Mcp-Session-Id: ${v0618}`], JSON.stringify(ping())), status: 401, check: authError('invalid_token') },
  { name: 'duplicate Authorization headers', send: () => raw([auth, auth, 'Content-Type: application/json', 'Accept: application/json, text/event-stream', `Mcp-Session-Id: ${v0618}`], JSON.stringify(ping())), status: 400, check: authError('invalid_request') }
]

for (const row of rows) {
  t.test(row.name, async t => {
    const answer = await row.send()
    t.equal(answer.status, row.status, 'status')
    t.ok(answer.status < 500, 'never a server error')
    t.notOk(leaksInternals(answer.body), 'no stack trace or source path in the body')
    if (row.check !== undefined) row.check(answer, t)
  })
}

t.test('after the corpus', async t => {
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is untouched')
  t.equal((Object.prototype as Record<string, unknown>).polluted, undefined)
  t.equal(ctx.issuer.jwksHits, jwksHitsBefore, 'no garbage token made the server fetch keys')
  t.notOk(ctx.logs.some(line => line.includes(ctx.token)), 'no log line holds the token')
  const res = await ctx.app.inject({ method: 'POST', url: '/mcp', headers: ok0618, payload: toolCall('get_news_sentiment', { ticker: 'AAPL', limit: 1 }, 99) })
  t.equal(res.statusCode, 200, 'the server keeps serving')
  t.equal(res.json().id, 99)
  t.equal(res.json().result.isError, undefined)
  const live = await fetch(`${base}/mcp`, { method: 'POST', headers: ok0618, body: JSON.stringify(ping(100)) })
  t.same(await live.json(), { jsonrpc: '2.0', id: 100, result: {} }, 'and over the network too')
})
