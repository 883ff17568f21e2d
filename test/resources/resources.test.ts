import t from 'tap'
import { buildApp } from '../helpers/build-app.js'
import { rpcCaller } from '../helpers/mcp-calls.js'
import { toolCaller } from '../helpers/news-tools.js'
import { TOPICS } from '../../lib/news/arguments.js'
import { METHODOLOGY } from '../../resources/methodology.js'

t.test('the methodology and the topic list are listed and read, with no upstream call', async t => {
  const ctx = await buildApp(t)
  const call = await rpcCaller(ctx)
  const { result } = await call('resources/list')
  t.same(result.resources.map((r: { uri: string }) => r.uri), ['news://methodology', 'news://topics'])
  t.match(result.resources[0], { name: 'methodology', title: 'How sentiment is computed', mimeType: 'text/markdown', size: Buffer.byteLength(METHODOLOGY) })

  const methodology = (await call('resources/read', { uri: 'news://methodology' })).result.contents[0]
  t.equal(methodology.mimeType, 'text/markdown')
  // The thresholds and rules the code applies (lib/news/sentiment.ts, trend.ts).
  for (const rule of ['≤ −0.35 | Bearish', '0.15 ≤ score < 0.35 | Somewhat-Bullish', 'Σ (relevance × ticker score) / Σ relevance', 'hours for windows up to 48 hours', 'smaller than\n0.05']) {
    t.match(methodology.text, rule)
  }
  const topics = JSON.parse((await call('resources/read', { uri: 'news://topics' })).result.contents[0].text)
  t.same(topics.topics.map((x: { code: string }) => x.code), [...TOPICS])
  t.match(topics.topics.find((x: { code: string }) => x.code === 'economy_monetary'), { name: /Monetary/ })

  const templates = (await call('resources/templates/list')).result.resourceTemplates
  t.match(templates, [{ uriTemplate: 'news://sentiment/{ticker}', name: 'news-sentiment', mimeType: 'application/json' }])
  t.equal(ctx.upstream.hits.length, 0)
})

t.test('news://sentiment/{ticker} shares the cache of get_news_sentiment: no extra upstream call', async t => {
  const ctx = await buildApp(t)
  const call = await rpcCaller(ctx)
  const tool = await toolCaller(ctx)

  const viaTool = await tool('get_news_sentiment', { ticker: 'AAPL' })
  t.equal(ctx.upstream.hits.length, 1)
  const read = await call('resources/read', { uri: 'news://sentiment/AAPL' })
  t.equal(ctx.upstream.hits.length, 1, 'the resource is answered from the tool\'s cache entry')
  const content = read.result.contents[0]
  t.equal(content.uri, 'news://sentiment/AAPL')
  t.equal(content.mimeType, 'application/json')
  const body = JSON.parse(content.text)
  t.same(body.aggregate, viaTool.result?.structuredContent.aggregate, 'the same figures as the tool')
  t.equal(body.articles.length, 5)
  t.equal(body.freshness.cached, true)

  // The other way round: the resource first (one call), then the tool and the resource again (none).
  const lower = await call('resources/read', { uri: 'news://sentiment/msft' })
  t.equal(ctx.upstream.hits.length, 2)
  t.equal(ctx.upstream.hits[1]?.params.get('tickers'), 'MSFT')
  t.equal(lower.result.contents[0].uri, 'news://sentiment/msft', 'contents carry the URI asked')
  await tool('get_news_sentiment', { ticker: 'MSFT', limit: 2 })
  await call('resources/read', { uri: 'news://sentiment/MSFT' })
  t.equal(ctx.upstream.hits.length, 2, 'neither spent quota again')
})

t.test('news://sentiment/{ticker}: hostile URIs are -32002; an upstream failure with nothing cached is -32603 saying why', async t => {
  const ctx = await buildApp(t, { ALPHA_VANTAGE_RETRIES: '0' })
  const call = await rpcCaller(ctx)
  for (const uri of ['news://sentiment/$$$', 'news://sentiment/' + 'A'.repeat(40), 'news://sentiment/', 'news://sentiment/A/B']) {
    t.match((await call('resources/read', { uri })).error, { code: -32002, message: 'Resource not found', data: { uri } }, uri)
  }
  t.equal(ctx.upstream.hits.length, 0)
  ctx.upstream.queue = ['http-503']
  const failed = await call('resources/read', { uri: 'news://sentiment/AAPL' })
  t.equal(failed.error?.code, -32603)
  t.match(failed.error?.message, /unavailable \(HTTP 503\)/)
  t.ok((await call('resources/read', { uri: 'news://sentiment/AAPL' })).result, 'and the next read is answered')
})

t.test('news://sentiment/{ticker}: the ticker completes from the symbol list', async t => {
  const ctx = await buildApp(t)
  const call = await rpcCaller(ctx)
  const { result } = await call('completion/complete', { ref: { type: 'ref/resource', uri: 'news://sentiment/{ticker}' }, argument: { name: 'ticker', value: 'tsl' } })
  t.same(result.completion, { values: ['TSLA'], total: 1, hasMore: false })
  t.equal(ctx.upstream.hits.length, 0)
})
