// Two replicas of the app (each built exactly as production builds it, each
// on its own port) sharing one Redis, and the official SDK client behind a
// round-robin "load balancer" with no sticky sessions: the client must not
// be able to tell which replica answered.
import t, { type Test } from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { buildApp, MCP_HEADERS, initializeBody, RESOURCE, type TestContext } from '../helpers/build-app.js'
import { LocalIssuer } from '../helpers/issuer.js'
import { FakeAlphaVantage } from '../helpers/fake-alpha-vantage.js'
import { freePort } from '../helpers/mcp-app.js'
import { RedisServer, until } from '../helpers/redis-server.js'

const issuer = await LocalIssuer.start()
const upstream = await FakeAlphaVantage.start()
t.teardown(async () => { await issuer.close(); await upstream.close() })

interface Replica { ctx: TestContext, base: string }

async function replicas (t: Test, redis: RedisServer, env: Record<string, string> = {}): Promise<[Replica, Replica]> {
  const out: Replica[] = []
  for (let i = 0; i < 2; i++) {
    const ctx = await buildApp(t, { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '300', ...env }, { issuer, upstream, skipOverride: true })
    const port = await freePort()
    await ctx.app.listen({ port, host: '127.0.0.1' })
    await until('Redis ready', () => ctx.app.redis.available)
    out.push({ ctx, base: `http://127.0.0.1:${port}` })
  }
  return out as [Replica, Replica]
}

/** A fetch that sends each request to the next replica in turn, and counts where they went. */
function roundRobin (targets: Replica[]): { fetch: typeof fetch, served: number[] } {
  const served = targets.map(() => 0)
  let next = 0
  return {
    served,
    fetch: async (input, init) => {
      const i = next++ % targets.length
      served[i] = (served[i] as number) + 1
      const url = new URL(input instanceof Request ? input.url : String(input))
      return await fetch(`${(targets[i] as Replica).base}${url.pathname}${url.search}`, init)
    }
  }
}

async function sdkClient (t: Test, token: string, fetchImpl: typeof fetch): Promise<{ client: Client, transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(RESOURCE), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
    fetch: fetchImpl
  })
  const client = new Client({ name: 'tap-replicas', version: '1.0.0' })
  t.teardown(() => client.close())
  await client.connect(transport)
  return { client, transport }
}

async function post (replica: Replica, token: string, body: unknown, session?: string): Promise<Response> {
  return await fetch(`${replica.base}/mcp`, {
    method: 'POST',
    headers: { ...MCP_HEADERS, authorization: `Bearer ${token}`, ...(session !== undefined && { 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' }) },
    body: JSON.stringify(body)
  })
}

const PING = { jsonrpc: '2.0', id: 5, method: 'ping' }

t.test('the SDK client spread over both replicas works as with one server; DELETE on A is 404 on B', async t => {
  const redis = await RedisServer.start(t)
  const [a, b] = await replicas(t, redis)
  const token = await issuer.token()
  const lb = roundRobin([a, b])
  const { client, transport } = await sdkClient(t, token, lb.fetch)
  const tools = await client.listTools()
  t.ok(tools.tools.some(tool => tool.name === 'get_news_sentiment'))
  for (let i = 0; i < 3; i++) {
    const result = await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } })
    t.notOk(result.isError, `call ${i + 1} answered`)
  }
  t.ok(lb.served[0] as number >= 3 && lb.served[1] as number >= 3, `both replicas served the one session (${lb.served.join(' + ')} requests)`)
  const session = transport.sessionId as string

  const del = await fetch(`${a.base}/mcp`, { method: 'DELETE', headers: { authorization: `Bearer ${token}`, 'mcp-session-id': session } })
  t.equal(del.status, 200, 'DELETE on A')
  const after = await post(b, token, PING, session)
  t.equal(after.status, 404, 'the next request on B: the session is gone everywhere')
  t.equal((await post(a, token, PING, session)).status, 404)
})

t.test('the rate limit is one count across the replicas', async t => {
  const redis = await RedisServer.start(t)
  const [a, b] = await replicas(t, redis, { MCP_RATE_LIMIT_MAX: '4', MCP_RATE_LIMIT_WINDOW_SEC: '60' })
  const token = await issuer.token({ claims: { sub: 'limited' } })
  const statuses: number[] = []
  for (let i = 0; i < 5; i++) statuses.push((await post(i % 2 === 0 ? a : b, token, initializeBody())).status)
  t.same(statuses, [200, 200, 200, 200, 429], 'the fifth request, wherever it lands, is over the limit of four')
  t.equal((await post(b, await issuer.token({ claims: { sub: 'other' } }), initializeBody())).status, 200, 'another caller has its own count')
})

t.test('Redis stopped and restarted in the middle of a run: 503 with Retry-After meanwhile, then the same session works again', async t => {
  const redis = await RedisServer.start(t, { persistent: true })
  const [a, b] = await replicas(t, redis)
  const token = await issuer.token()
  const lb = roundRobin([a, b])
  const { client, transport } = await sdkClient(t, token, lb.fetch)
  t.notOk((await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } })).isError)
  const session = transport.sessionId as string
  const rejections: unknown[] = []
  const onRejection = (err: unknown): void => { rejections.push(err) }
  process.on('unhandledRejection', onRejection)
  t.teardown(() => { process.off('unhandledRejection', onRejection) })

  await redis.stop()
  await until('both replicas notice', () => !a.ctx.app.redis.available && !b.ctx.app.redis.available)
  for (const replica of [a, b]) {
    const res = await post(replica, token, PING, session)
    t.equal(res.status, 503, 'neither 404 nor 401 while Redis is away')
    t.ok(Number(res.headers.get('retry-after')) > 0, 'with Retry-After')
    t.match(await res.json(), { jsonrpc: '2.0', error: { code: -32000, message: /Service Unavailable/ } })
  }
  t.equal((await post(a, token, initializeBody())).status, 503, 'no new session either')
  await t.rejects(client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } }), 'the SDK client sees an error, the server keeps serving')
  t.equal((await fetch(`${a.base}/health`)).status, 200, 'alive')

  await redis.start()
  await until('both replicas reconnect', () => a.ctx.app.redis.available && b.ctx.app.redis.available)
  for (let i = 0; i < 2; i++) {
    const result = await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } })
    t.notOk(result.isError, 'the session acknowledged before the outage serves again, on either replica')
  }
  t.equal(transport.sessionId, session, 'no re-initialization was needed')
  t.same(rejections, [], 'no unhandled promise rejection')
})

t.test('Redis failing between the session check and the deletion: 503, and the session is still there after', async t => {
  const redis = await RedisServer.start(t)
  const [a] = await replicas(t, redis)
  const token = await issuer.token()
  const init = await post(a, token, initializeBody())
  const session = init.headers.get('mcp-session-id') as string
  t.equal((await post(a, token, PING, session)).status, 200)
  // Commands fail while the subscription (and so the session copy) is still good.
  a.ctx.app.redis.client.disconnect()
  await until('the command connection is down', () => !a.ctx.app.redis.available)
  const del = await fetch(`${a.base}/mcp`, { method: 'DELETE', headers: { authorization: `Bearer ${token}`, 'mcp-session-id': session } })
  t.equal(del.status, 503)
  t.ok(Number(del.headers.get('retry-after')) > 0)
  await a.ctx.app.redis.client.connect()
  await until('reconnected', () => a.ctx.app.redis.available)
  t.equal((await post(a, token, PING, session)).status, 200, 'the session was not deleted')
})

t.test('DELETE on a replica that never saw the session asks Redis, ends it, and it is 404 everywhere', async t => {
  const redis = await RedisServer.start(t)
  const [a, b] = await replicas(t, redis)
  const token = await issuer.token({ claims: { sub: 'deleter' } })
  const opened = await post(a, token, initializeBody())
  t.equal(opened.status, 200)
  const session = opened.headers.get('mcp-session-id') as string
  t.equal(b.ctx.app.mcpSessions.get(session), undefined, 'B holds no copy of it')
  const del = await fetch(`${b.base}/mcp`, { method: 'DELETE', headers: { authorization: `Bearer ${token}`, 'mcp-session-id': session } })
  t.equal(del.status, 200, 'DELETE on B')
  await until('A dropped its copy', () => a.ctx.app.mcpSessions.get(session) === undefined)
  t.equal((await post(a, token, PING, session)).status, 404, 'gone on A')
  const again = await fetch(`${b.base}/mcp`, { method: 'DELETE', headers: { authorization: `Bearer ${token}`, 'mcp-session-id': session } })
  t.equal(again.status, 404, 'a second DELETE finds nothing')
})
