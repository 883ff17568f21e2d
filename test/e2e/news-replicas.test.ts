import t, { type Test } from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { buildApp, type TestContext } from '../helpers/build-app.js'
import { LocalIssuer } from '../helpers/issuer.js'
import { FakeAlphaVantage } from '../helpers/fake-alpha-vantage.js'
import { RedisServer } from '../helpers/redis-server.js'
import { freePort } from '../helpers/mcp-app.js'

/**
 * Two replicas of the app (two Fastify instances built as production builds
 * them) sharing one Redis and one fake Alpha Vantage, each on its own
 * 127.0.0.1 port, driven by the official SDK client over HTTP: the upstream
 * must see each question once, and the quota must be the deployment's.
 */

interface Replica { ctx: TestContext, url: URL }

async function replicas (t: Test, env: Record<string, string>): Promise<{ a: Replica, b: Replica, issuer: LocalIssuer, upstream: FakeAlphaVantage, redis: RedisServer }> {
  const issuer = await LocalIssuer.start()
  const upstream = await FakeAlphaVantage.start()
  const redis = await RedisServer.start(t)
  t.teardown(async () => { await issuer.close(); await upstream.close() })
  const prefix = `e2e${Math.random().toString(36).slice(2)}:`
  const start = async (): Promise<Replica> => {
    const port = await freePort()
    const resource = `http://127.0.0.1:${port}/mcp`
    const ctx = await buildApp(t, {
      ...env,
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: prefix,
      PORT: String(port),
      MCP_RESOURCE: resource,
      SCALEKIT_AUDIENCE_NAME: resource,
      SCALEKIT_RESOURCE_METADATA_URL: `http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp`
    }, { issuer, upstream, skipOverride: true })
    await ctx.app.listen({ port, host: '127.0.0.1' })
    const deadline = Date.now() + 5000
    while (!ctx.app.redis.available && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
    return { ctx, url: new URL(resource) }
  }
  const a = await start()
  const b = await start()
  issuer.audience = [a.url.href, b.url.href]
  return { a, b, issuer, upstream, redis }
}

async function connect (t: Test, replica: Replica, token: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(replica.url, { requestInit: { headers: { Authorization: `Bearer ${token}` } } })
  const client = new Client({ name: 'tap-replicas', version: '1.0.0' })
  t.teardown(() => client.close())
  await client.connect(transport)
  return client
}

type ToolResult = Awaited<ReturnType<Client['callTool']>>
const text = (r: ToolResult): string => (r.content as Array<{ text?: string }>)[0]?.text ?? ''

t.test('10 concurrent identical questions spread over two replicas make one upstream call (issue 9.7)', async t => {
  const { a, b, issuer, upstream } = await replicas(t, { ALPHA_VANTAGE_RETRIES: '0' })
  const token = await issuer.token()
  const clients = [await connect(t, a, token), await connect(t, b, token)]
  upstream.mode = 'slow'
  upstream.slowMs = 400
  const results = await Promise.all(Array.from({ length: 10 }, async (_, i) => await clients[i % 2]!.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL', limit: 1 + i } })))
  t.equal(upstream.hits.length, 1, 'the upstream saw the question once')
  for (const [i, r] of results.entries()) {
    t.notOk(r.isError, text(r))
    const out = r.structuredContent as { articles: unknown[], articlesConsidered: number }
    t.equal(out.articles.length, Math.min(1 + i, out.articlesConsidered), 'each caller its own limit')
  }
  const fetchedAt = new Set(results.map(r => (r.structuredContent as { freshness: { fetchedAt: string } }).freshness.fetchedAt))
  t.equal(fetchedAt.size, 1, 'one answer, seen by every caller on both replicas')

  // An upstream that fails: one call, and every waiter on both replicas gets its failure.
  upstream.hits = []
  upstream.mode = 'hang'
  const failed = await Promise.all(Array.from({ length: 4 }, async (_, i) => await clients[i % 2]!.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'MSFT' } })))
  t.equal(upstream.hits.length, 1, 'the failing question asked once')
  for (const r of failed) {
    t.equal(r.isError, true)
    t.match(text(r), /did not answer within 1 s/)
  }
})

t.test('a quota spent through replica A refuses on replica B; cached answers still served there (issue 9.7)', async t => {
  // Paced (a shared counter per minute window), well above what this test asks.
  const { a, b, issuer, upstream } = await replicas(t, { ALPHA_VANTAGE_DAILY_LIMIT: '2', ALPHA_VANTAGE_CALLS_PER_MINUTE: '100' })
  const token = await issuer.token()
  const onA = await connect(t, a, token)
  const onB = await connect(t, b, token)
  t.notOk((await onA.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } })).isError)
  t.notOk((await onA.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'MSFT' } })).isError)
  const refused = await onB.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'NVDA' } })
  t.equal(refused.isError, true)
  t.match(text(refused), /used its 2 Alpha Vantage requests for today \(daily limit\)/)
  t.equal(upstream.hits.length, 2, 'B asked nothing upstream')
  const cached = await onB.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'MSFT' } })
  t.notOk(cached.isError, 'A\'s answer, from the shared cache')
  t.match(cached.structuredContent, { freshness: { cached: true }, quota: { state: 'spent', used: 2 } })
  t.equal(await b.ctx.app.news.quotaRemaining(), 0)
})

t.test('Redis stopped and restarted in the middle: news keeps answering from each replica, then is shared again (issue 9.6)', async t => {
  // Stateless: sessions live in Redis and get 503 while it is away (tested in
  // replicas.test.ts); what is looked at here is the news fallback.
  const { a, b, issuer, upstream, redis } = await replicas(t, { MCP_STATELESS: 'true' })
  const token = await issuer.token()
  const onA = await connect(t, a, token)
  const onB = await connect(t, b, token)
  t.notOk((await onA.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } })).isError)
  const rejections: unknown[] = []
  const onRejection = (err: unknown): void => { rejections.push(err) }
  process.on('unhandledRejection', onRejection)
  t.teardown(() => { process.off('unhandledRejection', onRejection) })

  await redis.stop()
  const deadline = Date.now() + 5000
  while ((a.ctx.app.redis.available || b.ctx.app.redis.available) && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
  const cachedOnA = await onA.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } })
  t.match(cachedOnA.structuredContent, { freshness: { cached: true } }, 'A answers from its own memory')
  const newOnB = await onB.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'MSFT' } })
  t.notOk(newOnB.isError, 'B asks upstream itself')
  t.equal(upstream.hits.length, 2)

  await redis.start()
  while (!(a.ctx.app.redis.available && b.ctx.app.redis.available) && Date.now() < deadline + 10_000) await new Promise(resolve => setTimeout(resolve, 20))
  t.notOk((await onA.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'NVDA' } })).isError)
  const shared = await onB.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'NVDA' } })
  t.match(shared.structuredContent, { freshness: { cached: true } }, 'shared again: B gets A\'s answer')
  t.equal(upstream.hits.length, 3)
  t.same(rejections, [], 'no unhandled rejection')
})
