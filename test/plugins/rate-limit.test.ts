import t from 'tap'
import { buildApp, MCP_HEADERS, initializeBody } from '../helpers/build-app.js'

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
