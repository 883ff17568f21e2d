// Prompts, resources (templates, subscriptions), completion, elicitation of a
// ticker and MCP logging from the news tools, with the official SDK client
// over real HTTP: the app as production builds it, one replica in memory and
// two replicas sharing a real redis-server.
import t, { type Test } from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import {
  ElicitRequestSchema, LoggingMessageNotificationSchema, ResourceUpdatedNotificationSchema, PromptListChangedNotificationSchema, ResourceListChangedNotificationSchema,
  type ClientCapabilities, type LoggingMessageNotification
} from '@modelcontextprotocol/sdk/types.js'
import { buildApp, type TestContext } from '../helpers/build-app.js'
import { LocalIssuer } from '../helpers/issuer.js'
import { FakeAlphaVantage } from '../helpers/fake-alpha-vantage.js'
import { RedisServer, until } from '../helpers/redis-server.js'
import { buildMcpApp, freePort, listenLocal } from '../helpers/mcp-app.js'

const issuer = await LocalIssuer.start()
t.teardown(() => issuer.close())

interface Replica { ctx: TestContext, url: URL }

async function serve (t: Test, env: Record<string, string> = {}, shared?: { upstream: FakeAlphaVantage, redis: RedisServer, prefix: string }): Promise<Replica> {
  const port = await freePort()
  const resource = `http://127.0.0.1:${port}/mcp`
  const ctx = await buildApp(t, {
    ...env,
    ...(shared !== undefined && { REDIS_URL: shared.redis.url, REDIS_KEY_PREFIX: shared.prefix }),
    PORT: String(port),
    MCP_RESOURCE: resource,
    SCALEKIT_AUDIENCE_NAME: resource,
    SCALEKIT_RESOURCE_METADATA_URL: `http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp`
  }, { issuer, skipOverride: true, ...(shared !== undefined && { upstream: shared.upstream }) })
  await ctx.app.listen({ port, host: '127.0.0.1' })
  if (shared !== undefined) await until('Redis ready', () => ctx.app.redis.available)
  return { ctx, url: new URL(resource) }
}

async function connect (t: Test, url: URL, capabilities: ClientCapabilities = {}): Promise<Client> {
  issuer.audience = [...new Set([...issuer.audience, url.href])]
  const token = await issuer.token()
  const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers: { Authorization: `Bearer ${token}` } } })
  const client = new Client({ name: 'tap-features', version: '1.0.0' }, { capabilities })
  t.teardown(() => client.close())
  await client.connect(transport)
  return client
}

/** Resolves with the next notifications/resources/updated the client receives. */
function nextUpdate (client: Client): Promise<string> {
  return new Promise(resolve => {
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, n => { resolve(n.params.uri) })
  })
}

const text = (r: Record<string, unknown>): string => (r.content as Array<{ text?: string }>)[0]?.text ?? ''

t.test('prompts, resources, templates and completion through the SDK client', async t => {
  const { ctx, url } = await serve(t)
  const client = await connect(t, url)
  t.match(client.getServerCapabilities(), { prompts: { listChanged: true }, resources: { subscribe: true, listChanged: true }, completions: {} })

  const { prompts } = await client.listPrompts()
  t.same(prompts.map(p => p.name), ['sentiment_brief', 'compare_sentiment'])
  const brief = await client.getPrompt({ name: 'sentiment_brief', arguments: { ticker: 'nvda' } })
  t.match(brief.messages[0]?.content, { type: 'text', text: /Call get_news_sentiment with ticker "NVDA"/ })
  await t.rejects(client.getPrompt({ name: 'no_such_prompt' }), { code: -32602 })

  const { resources } = await client.listResources()
  t.same(resources.map(r => r.uri), ['news://methodology', 'news://topics'])
  const methodology = await client.readResource({ uri: 'news://methodology' })
  t.match(methodology.contents[0], { uri: 'news://methodology', mimeType: 'text/markdown', text: /relevance-weighted mean/ })
  const { resourceTemplates } = await client.listResourceTemplates()
  t.same(resourceTemplates.map(r => r.uriTemplate), ['news://sentiment/{ticker}'])
  await t.rejects(client.readResource({ uri: 'news://nothing' }), { code: -32002 })

  const completed = await client.complete({ ref: { type: 'ref/prompt', name: 'compare_sentiment' }, argument: { name: 'tickers', value: 'AAPL, goo' } })
  t.same(completed.completion.values.slice(0, 2), ['AAPL, GOOGL', 'AAPL, GOOG'])
  const viaTemplate = await client.complete({ ref: { type: 'ref/resource', uri: 'news://sentiment/{ticker}' }, argument: { name: 'ticker', value: 'ms' } })
  t.equal(viaTemplate.completion.values[0], 'MS')
  t.ok(viaTemplate.completion.values.includes('MSFT'))
  await t.rejects(client.complete({ ref: { type: 'ref/prompt', name: 'nope' }, argument: { name: 'x', value: '' } }), { code: -32602 })

  // Reading the template from the cache makes no upstream call.
  await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } })
  t.equal(ctx.upstream.hits.length, 1)
  const read = await client.readResource({ uri: 'news://sentiment/AAPL' })
  t.equal(JSON.parse((read.contents[0] as { text: string }).text).tickers[0], 'AAPL')
  t.equal(ctx.upstream.hits.length, 1, 'answered from the tool\'s cache entry')
})

t.test('the client follows nextCursor through every page, and hears of a prompt registered later', async t => {
  const app = await buildMcpApp(t, { pageSize: 2 }, {
    issuer,
    tools: app => {
      for (let i = 0; i < 5; i++) app.mcpPrompt({ name: `p${i}` }, () => ({ messages: [] }))
      for (let i = 0; i < 3; i++) app.mcpResource({ uri: `test://r${i}`, name: `r${i}` }, uri => ({ contents: [{ uri, text: String(i) }] }))
      for (let i = 0; i < 3; i++) app.mcpResourceTemplate({ uriTemplate: `test://t${i}/{x}`, name: `t${i}` }, uri => ({ contents: [{ uri, text: 'x' }] }))
    }
  })
  const base = await listenLocal(app.app)
  const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), { requestInit: { headers: { Authorization: `Bearer ${app.token}` } } })
  const client = new Client({ name: 'tap-pages', version: '1.0.0' })
  t.teardown(() => client.close())
  await client.connect(transport)

  const names: string[] = []
  let cursor: string | undefined
  let pages = 0
  do {
    const page = await client.listPrompts(cursor === undefined ? {} : { cursor })
    names.push(...page.prompts.map(p => p.name))
    cursor = page.nextCursor
    pages++
  } while (cursor !== undefined)
  t.same(names, ['p0', 'p1', 'p2', 'p3', 'p4'])
  t.equal(pages, 3)
  const first = await client.listResources()
  const second = await client.listResources({ cursor: first.nextCursor as string })
  t.same([...first.resources, ...second.resources].map(r => r.uri), ['test://r0', 'test://r1', 'test://r2'])
  t.equal(second.nextCursor, undefined)
  const templates = await client.listResourceTemplates()
  t.equal(templates.resourceTemplates.length, 2)
  t.type(templates.nextCursor, 'string')
  await t.rejects(client.listPrompts({ cursor: 'forged' }), { code: -32602 })

  // listChanged: a prompt registered after the server is ready.
  const changed = new Promise<void>(resolve => client.setNotificationHandler(PromptListChangedNotificationSchema, () => resolve()))
  await until('GET stream open', () => [...app.app.mcpSessions.values()].some(s => s.stream !== undefined))
  app.app.mcpPrompt({ name: 'late' }, () => ({ messages: [] }))
  await changed
  const all: string[] = []
  cursor = undefined
  do {
    const page = await client.listPrompts(cursor === undefined ? {} : { cursor })
    all.push(...page.prompts.map(p => p.name))
    cursor = page.nextCursor
  } while (cursor !== undefined)
  t.equal(all.at(-1), 'late')

  // The same for a resource and a template.
  let resourceLists = 0
  const twice = new Promise<void>(resolve => client.setNotificationHandler(ResourceListChangedNotificationSchema, () => { if (++resourceLists === 2) resolve() }))
  app.app.mcpResource({ uri: 'test://late', name: 'late' }, uri => ({ contents: [{ uri, text: 'late' }] }))
  app.app.mcpResourceTemplate({ uriTemplate: 'test://late/{x}', name: 'late-template' }, uri => ({ contents: [{ uri, text: 'late' }] }))
  await twice
  t.same((await client.readResource({ uri: 'test://late/1' })).contents, [{ uri: 'test://late/1', text: 'late' }])
})

t.test('subscribeResource: a fresh answer for the ticker notifies the subscriber; unsubscribed, it does not', async t => {
  const { ctx, url } = await serve(t, { NEWS_CACHE_TTL_SEC: '1' })
  const client = await connect(t, url)
  await client.subscribeResource({ uri: 'news://sentiment/AAPL' })
  await t.rejects(client.subscribeResource({ uri: 'news://nowhere' }), { code: -32002 })
  await until('GET stream open', () => [...ctx.app.mcpSessions.values()].some(s => s.stream !== undefined))
  const updated = nextUpdate(client)
  await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } })
  t.equal(await updated, 'news://sentiment/AAPL')

  // Another ticker, or a narrower question (a window), is not this resource.
  let others = 0
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, () => { others++ })
  await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'MSFT' } })
  await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL', timeFrom: '7d' } })
  await client.unsubscribeResource({ uri: 'news://sentiment/AAPL' })
  await new Promise(resolve => setTimeout(resolve, 1100)) // the cached answer goes stale
  await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } })
  await new Promise(resolve => setTimeout(resolve, 200))
  t.equal(others, 0, 'no notification for other questions, nor after unsubscribing')
  // AAPL, MSFT, AAPL again past the TTL: the 7-day window was cut from the cached feed.
  t.equal(ctx.upstream.hits.length, 3)
})

t.test('two replicas sharing Redis: subscribed on A, the update raised on B reaches the GET stream on A', async t => {
  const upstream = await FakeAlphaVantage.start()
  t.teardown(() => upstream.close())
  const redis = await RedisServer.start(t)
  const shared = { upstream, redis, prefix: `features${Date.now()}:` }
  const a = await serve(t, {}, shared)
  const b = await serve(t, {}, shared)
  const onA = await connect(t, a.url)
  const onB = await connect(t, b.url)
  await onA.subscribeResource({ uri: 'news://sentiment/TSLA' })
  await until('GET stream open on A', () => [...a.ctx.app.mcpSessions.values()].some(s => s.stream !== undefined))
  const updated = nextUpdate(onA)
  const answer = await onB.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'TSLA' } })
  t.notOk(answer.isError)
  t.equal(await updated, 'news://sentiment/TSLA')
  t.equal(upstream.hits.length, 1, 'fetched once, on B')

  // Read on A from the cache B filled: no upstream call.
  const read = await onA.readResource({ uri: 'news://sentiment/TSLA' })
  t.equal(JSON.parse((read.contents[0] as { text: string }).text).freshness.cached, true)
  t.equal(upstream.hits.length, 1)

  // The session's end ends its subscriptions (in Redis, for every replica).
  await (onA.transport as StreamableHTTPClientTransport).terminateSession()
  const keys = async (): Promise<string[]> => await b.ctx.app.redis.client.keys(`${shared.prefix}subscri*`)
  const deadline = Date.now() + 5000
  while ((await keys()).length > 0 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 20))
  t.same(await keys(), [], 'no subscription left behind')
})

t.test('get_news_sentiment asks the user to choose when given a company name, where the client can', async t => {
  const { ctx, url } = await serve(t)
  const client = await connect(t, url, { elicitation: {} })
  const asked: unknown[] = []
  client.setRequestHandler(ElicitRequestSchema, async request => {
    asked.push(request.params)
    return { action: 'accept', content: { ticker: 'AAPL' } }
  })
  const result = await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'Apple' } })
  t.notOk(result.isError)
  t.match(text(result), /^AAPL: /)
  t.match(asked, [{ message: '"Apple" is not a ticker symbol. Which one do you mean?', requestedSchema: { properties: { ticker: { enum: ['AAPL', 'APLE'], enumNames: ['AAPL (Apple Inc., NASDAQ)', 'APLE (Apple Hospitality REIT Inc., NYSE)'] } }, required: ['ticker'] } }])
  t.equal(ctx.upstream.hits[0]?.params.get('tickers'), 'AAPL')

  // Declined: a tool error that says what to do.
  client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'decline' }))
  const declined = await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'berkshire hathaway' } })
  t.equal(declined.isError, true)
  t.match(text(declined), 'The user chose no ticker for "berkshire hathaway". If they still want news, call get_news_sentiment again with one of them as ticker: BRK.A (Berkshire Hathaway Inc. Class A, NYSE), BRK.B')
  // An answer outside the choices counts as none.
  client.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'accept', content: { ticker: 'MSFT' } }))
  t.equal((await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'BRK' } })).isError, true)

  // The client failing to answer: a tool error too, and the server keeps serving.
  client.setRequestHandler(ElicitRequestSchema, async () => { throw new Error('no UI here') })
  const failed = await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'Apple' } })
  t.equal(failed.isError, true)

  // A listed symbol, or one shaped like a symbol, is never asked about.
  asked.length = 0
  client.setRequestHandler(ElicitRequestSchema, async request => { asked.push(request.params); return { action: 'cancel' } })
  t.notOk((await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'msft' } })).isError)
  t.notOk((await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'ZZZZ' } })).isError)
  t.same(asked, [])
  t.equal(ctx.upstream.hits.length, 3)
})

t.test('without elicitation, a company name gets a tool error naming the candidates', async t => {
  const { ctx, url } = await serve(t)
  const client = await connect(t, url)
  const result = await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'alphabet' } })
  t.equal(result.isError, true)
  t.equal(text(result), '"alphabet" is not a ticker symbol; it may mean several. Ask the user which one, then call get_news_sentiment again with one of them as ticker: GOOGL (Alphabet Inc. Class A, NASDAQ), GOOG (Alphabet Inc. Class C, NASDAQ).')
  t.equal(ctx.upstream.hits.length, 0)
  const refused = await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'no such company' } })
  t.equal(refused.isError, true)
  t.match(text(refused), /ticker: must be a ticker symbol/)
})

t.test('the news tools log through MCP logging: a retry, the quota near and spent, a stale answer', async t => {
  const { ctx, url } = await serve(t, { ALPHA_VANTAGE_DAILY_LIMIT: '3', ALPHA_VANTAGE_RETRIES: '1', ALPHA_VANTAGE_RETRY_BASE_MS: '1', NEWS_CACHE_TTL_SEC: '1' })
  const client = await connect(t, url)
  const logs: LoggingMessageNotification['params'][] = []
  client.setNotificationHandler(LoggingMessageNotificationSchema, n => { logs.push(n.params) })
  await client.setLoggingLevel('info')

  ctx.upstream.queue = ['http-503']
  t.notOk((await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } })).isError, 'the retry answered')
  t.match(logs, [{ level: 'warning', logger: 'news', data: { message: /Alpha Vantage failed \(.*HTTP 503.*\); retrying \(attempt 2 of 2\)/ } }])
  logs.length = 0
  await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'MSFT' } })
  t.match(logs, [{ level: 'warning', logger: 'news', data: { message: 'Alpha Vantage quota spent for today (3/3); only cached questions are answered until ' + new Date(Math.ceil(Date.now() / 86_400_000) * 86_400_000).toISOString() } }])

  // Past the TTL the upstream refuses nothing more: the quota is spent, so the stale answer is served.
  logs.length = 0
  await new Promise(resolve => setTimeout(resolve, 1100))
  const stale = await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } })
  t.equal((stale.structuredContent as { freshness: { stale: boolean } }).freshness.stale, true)
  t.match(logs, [{ level: 'warning', data: { message: /^Served a stale answer \(\d+ s old, fetched .*\): / } }, { level: 'warning', data: { message: /quota spent/ } }])

  // Above the session's level nothing is sent.
  logs.length = 0
  await client.setLoggingLevel('error')
  await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } })
  t.same(logs, [])
})

t.test('quota near is a notice', async t => {
  const { url } = await serve(t, { ALPHA_VANTAGE_DAILY_LIMIT: '3' })
  const client = await connect(t, url)
  const logs: LoggingMessageNotification['params'][] = []
  client.setNotificationHandler(LoggingMessageNotificationSchema, n => { logs.push(n.params) })
  await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } })
  t.same(logs, [])
  await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'MSFT' } })
  t.match(logs, [{ level: 'notice', logger: 'news', data: { message: 'Alpha Vantage quota nearly spent: 2 of 3 requests used today', quota: { state: 'near' } } }])
})
