import t from 'tap'
import { buildApp, MCP_HEADERS, openSession } from './helpers/build-app.js'

t.test('a tool call over inject', async t => {
  const ctx = await buildApp(t)
  const session = await openSession(ctx)
  const res = await ctx.app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { ...MCP_HEADERS, authorization: `Bearer ${ctx.token}`, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' },
    payload: { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'get_news_sentiment', arguments: { ticker: 'aapl', limit: 3 } } }
  })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.same(body.result.structuredContent.tickers, ['AAPL'])
  t.equal(body.result.structuredContent.articles.length, 3)
  t.equal(ctx.upstream.hits.length, 1)
})
