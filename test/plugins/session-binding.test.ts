// Issue 8, point 8: a session belongs to the principal AND the client its
// token was issued to; users and clients live in separate namespaces.
import t from 'tap'
import { buildApp, MCP_HEADERS, initializeBody, openSession, type TestContext } from '../helpers/build-app.js'

async function ping (ctx: TestContext, token: string, session: string): Promise<number> {
  const res = await ctx.app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { ...MCP_HEADERS, authorization: `Bearer ${token}`, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' },
    payload: { jsonrpc: '2.0', id: 9, method: 'ping' }
  })
  return res.statusCode
}

t.test('the same user through another client can neither use nor delete the session', async t => {
  const ctx = await buildApp(t)
  const viaA = await ctx.issuer.token({ claims: { sub: 'alice', client_id: 'app-a' } })
  const viaB = await ctx.issuer.token({ claims: { sub: 'alice', client_id: 'app-b' } })
  const viaAzp = await ctx.issuer.token({ claims: { sub: 'alice', client_id: undefined, azp: 'app-a' } })
  const session = await openSession(ctx, '2025-06-18', viaA)
  t.equal(await ping(ctx, viaA, session), 200)
  t.equal(await ping(ctx, viaB, session), 404, 'another client of the same user: like an unknown session')
  const del = await ctx.app.inject({ method: 'DELETE', url: '/mcp', headers: { authorization: `Bearer ${viaB}`, 'mcp-session-id': session } })
  t.equal(del.statusCode, 404, 'nor can it end it')
  t.equal(await ping(ctx, viaAzp, session), 200, '`azp` names the client as `client_id` does')
})

t.test('a client-credentials token whose client_id equals a user name is not that user', async t => {
  const ctx = await buildApp(t)
  const user = await ctx.issuer.token({ claims: { sub: 'alice', client_id: 'alice' } })
  const client = await ctx.issuer.token({ claims: { sub: undefined, client_id: 'alice' } })
  const session = await openSession(ctx, '2025-06-18', user)
  t.equal(await ping(ctx, client, session), 404)
  const own = await openSession(ctx, '2025-06-18', client)
  t.equal(await ping(ctx, user, own), 404, 'and the other way round')
  t.equal(await ping(ctx, client, own), 200)
})

t.test("the per-subject cap counts per (user, client): client B's sessions never evict client A's", async t => {
  const ctx = await buildApp(t, { MCP_MAX_SESSIONS_PER_SUBJECT: '2' })
  const viaA = await ctx.issuer.token({ claims: { sub: 'alice', client_id: 'app-a' } })
  const viaB = await ctx.issuer.token({ claims: { sub: 'alice', client_id: 'app-b' } })
  const first = await openSession(ctx, '2025-06-18', viaA)
  for (let i = 0; i < 5; i++) await openSession(ctx, '2025-06-18', viaB)
  t.equal(await ping(ctx, viaA, first), 200, "client A's session survives client B's flood")
  await openSession(ctx, '2025-06-18', viaA)
  await openSession(ctx, '2025-06-18', viaA)
  t.equal(await ping(ctx, viaA, first), 404, 'client A at its own cap loses its own oldest')
})

t.test('the rate limit counts per principal: all clients of a user together, a client apart from a user of its name', async t => {
  const ctx = await buildApp(t, { MCP_RATE_LIMIT_MAX: '3', MCP_RATE_LIMIT_WINDOW_SEC: '60' })
  const post = async (token: string): Promise<number> => (await ctx.app.inject({
    method: 'POST', url: '/mcp', headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` }, payload: initializeBody()
  })).statusCode
  const viaA = await ctx.issuer.token({ claims: { sub: 'alice', client_id: 'app-a' } })
  const viaB = await ctx.issuer.token({ claims: { sub: 'alice', client_id: 'app-b' } })
  const client = await ctx.issuer.token({ claims: { sub: undefined, client_id: 'alice' } })
  t.same([await post(viaA), await post(viaB), await post(viaA)], [200, 200, 200])
  t.equal(await post(viaB), 429, 'a user does not get more requests by using more clients')
  t.equal(await post(client), 200, 'the client named alice has its own count')
})
