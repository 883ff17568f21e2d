import t from 'tap'
import { request, type IncomingHttpHeaders } from 'node:http'
import { buildApp, MCP_HEADERS, initializeBody } from '../helpers/build-app.js'
import { listenLocal } from '../helpers/mcp-app.js'

t.test('per-subject rate limit on the MCP endpoint', async t => {
  const ctx = await buildApp(t, { MCP_RATE_LIMIT_MAX: '3', MCP_RATE_LIMIT_WINDOW_SEC: '60' })
  const other = await ctx.issuer.token({ claims: { sub: 'user_other' } })
  const post = (token: string) => ctx.app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` },
    payload: initializeBody()
  })

  for (let i = 0; i < 3; i++) t.equal((await post(ctx.token)).statusCode, 200, `request ${i + 1} within the limit`)
  const limited = await post(ctx.token)
  t.equal(limited.statusCode, 429, 'the fourth request of the subject is refused')
  t.ok(Number(limited.headers['retry-after']) > 0, 'with Retry-After (RFC 6585 §4)')
  t.match(limited.json(), { jsonrpc: '2.0', id: null, error: { code: -32000, message: /Too Many Requests/ } })

  t.equal((await post(other)).statusCode, 200, 'another subject is not affected')
  t.equal((await ctx.app.inject({ method: 'GET', url: '/health' })).statusCode, 200, 'health is never limited')

  const anonymous = await ctx.app.inject({ method: 'POST', url: '/mcp', headers: MCP_HEADERS, payload: initializeBody() })
  t.equal(anonymous.statusCode, 401, 'without a token the answer is the auth challenge, not the limiter')
})

t.test('MCP_RATE_LIMIT_MAX=0 turns limiting off', async t => {
  const ctx = await buildApp(t, { MCP_RATE_LIMIT_MAX: '0' })
  for (let i = 0; i < 5; i++) {
    const res = await ctx.app.inject({ method: 'POST', url: '/mcp', headers: { ...MCP_HEADERS, authorization: `Bearer ${ctx.token}` }, payload: initializeBody() })
    t.equal(res.statusCode, 200)
  }
  t.notOk(ctx.app.hasDecorator('rateLimit'), 'the library is not even registered')
  const old = await ctx.app.inject({ method: 'POST', url: '/mcp', headers: { ...MCP_HEADERS, authorization: `Bearer ${ctx.token}` }, payload: initializeBody('2025-03-26') })
  const batch = await ctx.app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { ...MCP_HEADERS, authorization: `Bearer ${ctx.token}`, 'mcp-session-id': old.headers['mcp-session-id'] as string },
    payload: Array.from({ length: 20 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'ping' }))
  })
  t.equal(batch.json().length, 20, 'batches are not counted either')
})

t.test('a negative or fractional max is refused at registration', async t => {
  const { default: Fastify } = await import('fastify')
  const { default: rateLimit } = await import('../../plugins/rate-limit.js')
  for (const max of [-1, 1.5]) {
    const app = Fastify()
    app.register(rateLimit, { max, timeWindowMs: 1000 })
    await t.rejects(async () => { await app.ready() }, /rate-limit: "max" must be a non-negative integer/)
  }
})

/** POST over a real connection with the request target exactly as given (node:http sends `path` verbatim). */
async function postTarget (base: string, target: string, token: string, body: string): Promise<{ status: number, headers: IncomingHttpHeaders }> {
  const { hostname, port } = new URL(base)
  return await new Promise((resolve, reject) => {
    const req = request({
      host: hostname,
      port,
      method: 'POST',
      path: target,
      headers: { ...MCP_HEADERS, authorization: `Bearer ${token}`, 'content-length': Buffer.byteLength(body) }
    }, res => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode as number, headers: res.headers }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

t.test('the limit follows the matched route: encoded paths and absolute-form targets are limited too', async t => {
  const ctx = await buildApp(t, { MCP_RATE_LIMIT_MAX: '3', MCP_RATE_LIMIT_WINDOW_SEC: '60' })
  const base = await listenLocal(ctx.app)
  const body = JSON.stringify(initializeBody())
  // The router decodes the path and accepts the absolute form (RFC 9112 §3.2.2): each reaches POST /mcp.
  const targets = ['/%6Dcp', '/m%63p', '/%6d%63%70', `${base}/mcp`, `${base}/%6Dcp`]
  for (const [i, target] of targets.entries()) {
    const token = await ctx.issuer.token({ claims: { sub: `user_form_${i}` } })
    for (let n = 1; n <= 3; n++) {
      const res = await postTarget(base, target, token, body)
      t.equal(res.status, 200, `${target}: request ${n} reaches the MCP route`)
      t.equal(res.headers['x-ratelimit-remaining'], String(3 - n), `${target}: request ${n} is counted`)
    }
    const limited = await postTarget(base, target, token, body)
    t.equal(limited.status, 429, `${target}: the fourth request is refused`)
    t.ok(Number(limited.headers['retry-after']) > 0)
  }
})

t.test('each message of a batch counts against the limit, in a session and stateless (no MCP-Protocol-Version: 2025-03-26)', async t => {
  for (const stateless of [false, true]) {
    t.test(stateless ? 'stateless' : 'in a 2025-03-26 session', async t => {
      const ctx = await buildApp(t, { MCP_RATE_LIMIT_MAX: '10', MCP_RATE_LIMIT_WINDOW_SEC: '60', MCP_STATELESS: String(stateless) })
      const token = await ctx.issuer.token({ claims: { sub: 'user_batcher' } })
      const headers: Record<string, string> = { ...MCP_HEADERS, authorization: `Bearer ${token}` }
      if (!stateless) {
        const init = await ctx.app.inject({ method: 'POST', url: '/mcp', headers, payload: initializeBody('2025-03-26') })
        headers['mcp-session-id'] = init.headers['mcp-session-id'] as string
      }
      const used = stateless ? 0 : 1
      const batch = (n: number) => ctx.app.inject({
        method: 'POST', url: '/mcp', headers, payload: Array.from({ length: n }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'ping' }))
      })
      const first = await batch(10 - used - 1)
      t.equal(first.statusCode, 200, `a batch of ${10 - used - 1} fits in the limit of 10`)
      t.equal(first.json().length, 10 - used - 1)
      const second = await batch(5)
      t.equal(second.statusCode, 429, 'a batch of 5 with one request left is refused')
      t.ok(Number(second.headers['retry-after']) > 0, 'with Retry-After')
      t.match(second.json(), { jsonrpc: '2.0', id: null, error: { code: -32000, message: /^Too Many Requests: each message of a batch counts as a request, and the limit is 10 requests per 60 s/ } })
      const single = await ctx.app.inject({ method: 'POST', url: '/mcp', headers, payload: { jsonrpc: '2.0', id: 1, method: 'ping' } })
      t.equal(single.statusCode, 429, 'and the caller is out of requests')
      const other = await ctx.issuer.token({ claims: { sub: 'user_other' } })
      const theirs = await ctx.app.inject({ method: 'POST', url: '/mcp', headers: { ...MCP_HEADERS, authorization: `Bearer ${other}` }, payload: initializeBody() })
      t.equal(theirs.statusCode, 200, 'another subject is not affected')
    })
  }
})
