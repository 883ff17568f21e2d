import t from 'tap'
import { MCP_HEADERS, buildApp, openSession } from '../helpers/build-app.js'
import { toolCaller } from '../helpers/news-tools.js'

const TOOL = 'get_news_sentiment'

// Issue 5: a slow Alpha Vantage must not hold other requests, and the server
// must not open more upstream connections than its pool allows.
t.test('a hanging upstream holds neither other questions nor more than the pool', async t => {
  const ctx = await buildApp(t, { ALPHA_VANTAGE_TIMEOUT_MS: '1500', ALPHA_VANTAGE_MAX_CONNECTIONS: '2', ALPHA_VANTAGE_RETRIES: '0' })
  const call = await toolCaller(ctx)
  t.notOk((await call(TOOL, { ticker: 'AAPL' })).result?.isError, 'AAPL answered and cached')

  ctx.upstream.mode = 'hang'
  const startedAt = Date.now()
  const hanging = ['MSFT', 'TSM', 'GOOG', 'NVDA'].map(async ticker => await call(TOOL, { ticker }))
  await new Promise(resolve => setTimeout(resolve, 200))
  t.equal(ctx.upstream.hits.length, 1 + 2, 'four new questions, but at most two upstream requests at a time (the pool)')

  const quick = Date.now()
  const cached = await call(TOOL, { ticker: 'AAPL' })
  t.equal(cached.result?.structuredContent.freshness.cached, true, 'a cached question is answered while the upstream hangs')
  const session = await openSession(ctx)
  const list = await ctx.app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { ...MCP_HEADERS, authorization: `Bearer ${ctx.token}`, 'mcp-session-id': session },
    payload: { jsonrpc: '2.0', id: 99, method: 'tools/list' }
  })
  t.equal(list.json().result.tools.length, 5, 'so are a new session and tools/list')
  t.ok(Date.now() - quick < 500, `without waiting on the upstream (${Date.now() - quick} ms)`)

  const answers = await Promise.all(hanging)
  for (const answer of answers) {
    t.equal(answer.result?.isError, true)
    t.match(answer.text, /Alpha Vantage did not answer within 1\.5 s|unreachable|unavailable/)
  }
  t.ok(Date.now() - startedAt < 1500 * 2 + 1000, `the hanging calls end in bounded time (${Date.now() - startedAt} ms: each waits at most its own deadline)`)
})
