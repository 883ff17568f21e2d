import t, { type Test } from 'tap'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { AlphaVantageClient, AlphaVantageError, classifyUpstreamMessage, retainedBytes, toNumber, type AlphaVantageClientOptions } from '../../../lib/news/alpha-vantage.js'
import { FakeAlphaVantage, newsFixture, type UpstreamMode } from '../../helpers/fake-alpha-vantage.js'
import { referenceIso } from '../../helpers/eastern-reference.js'

const KEY = 'UNIT-KEY-42'

async function setup (t: Test, opts: Partial<AlphaVantageClientOptions> = {}): Promise<{ upstream: FakeAlphaVantage, client: AlphaVantageClient }> {
  const upstream = await FakeAlphaVantage.start()
  const client = new AlphaVantageClient({ baseUrl: upstream.url, apiKey: KEY, timeoutMs: 1000, maxConnections: 2, ...opts })
  t.teardown(async () => {
    await client.close()
    await upstream.close()
  })
  return { upstream, client }
}

t.test('the request: path, apikey and parameters', async t => {
  const { upstream, client } = await setup(t)
  await client.newsSentiment({ tickers: ['AAPL', 'CRYPTO:BTC'], topics: ['technology', 'ipo'], timeFrom: '20240101T0930', timeTo: '20240201T1600', sort: 'RELEVANCE', limit: 50 })
  await client.newsSentiment({})
  await client.newsSentiment({ tickers: [], topics: [] })
  t.equal(client.calls, 3)
  const [full, bare, empty] = upstream.hits
  t.same(Object.fromEntries(full!.params), {
    function: 'NEWS_SENTIMENT',
    tickers: 'AAPL,CRYPTO:BTC',
    topics: 'technology,ipo',
    time_from: '20240101T0930',
    time_to: '20240201T1600',
    sort: 'RELEVANCE',
    limit: '50',
    apikey: KEY
  })
  t.same(Object.fromEntries(bare!.params), { function: 'NEWS_SENTIMENT', apikey: KEY })
  t.same(Object.fromEntries(empty!.params), { function: 'NEWS_SENTIMENT', apikey: KEY }, 'empty lists are not sent')
  t.equal(full!.headers.accept, 'application/json')
  t.equal(full!.headers.authorization, undefined)
})

t.test('the base URL keeps its own path and query', async t => {
  const upstream = await FakeAlphaVantage.start()
  const client = new AlphaVantageClient({ baseUrl: `${upstream.url}?datatype=json&apikey=ignored`, apiKey: KEY, timeoutMs: 1000, maxConnections: 1 })
  t.teardown(async () => { await client.close(); await upstream.close() })
  await client.newsSentiment({ tickers: ['AAPL'] })
  t.equal(upstream.hits[0]!.params.get('datatype'), 'json')
  t.same(upstream.hits[0]!.params.getAll('apikey'), [KEY], 'the configured key wins, once')
})

t.test('the fixture parsed: numbers from strings, Eastern times to UTC, untitled articles dropped', async t => {
  const { client } = await setup(t)
  const feed = await client.newsSentiment({ tickers: ['AAPL'] })
  const titled = newsFixture.feed.filter(a => typeof a.title === 'string' && a.title !== '')
  t.equal(feed.articles.length, titled.length)
  t.equal(feed.dropped, newsFixture.feed.length - titled.length)
  t.equal(feed.upstreamBytes, Buffer.byteLength(JSON.stringify(newsFixture)))
  t.equal(feed.bytes, retainedBytes(feed.articles), 'the cache counts what the parsed feed keeps')
  for (const [i, raw] of titled.entries()) {
    const a = feed.articles[i]!
    t.equal(a.title, raw.title)
    t.equal(a.publishedAt, referenceIso(raw.time_published))
    t.equal(a.overallSentimentScore, Number(raw.overall_sentiment_score))
    t.equal(a.sourceDomain, raw.source_domain)
    t.same(a.topics.map(x => x.relevance), (raw.topics as Array<{ relevance_score: string }>).map(x => Number(x.relevance_score)))
    t.same(a.tickerSentiment.map(x => x.ticker), (raw.ticker_sentiment as Array<{ ticker: string }>).map(x => x.ticker))
  }
  const unscored = feed.articles.flatMap(a => a.tickerSentiment).find(s => s.relevance === 0)
  t.same(unscored, { ticker: 'AAPL', relevance: 0, score: null, label: 'Neutral' }, 'an empty score is null, not 0')
  const spaced = feed.articles.flatMap(a => a.tickerSentiment).find(s => s.relevance === 0.5)
  t.equal(spaced?.score, 0.25, '" 0.5 " reads as 0.5')
})

t.test('odd articles: defaults for what is missing', async t => {
  const { upstream, client } = await setup(t)
  upstream.body = {
    feed: [
      null,
      'not an article',
      { title: '   ' },
      {
        title: '  Only a title  ',
        ticker_sentiment: [null, { relevance_score: '1' }, { ticker: 'aapl', relevance_score: 'x', ticker_sentiment_score: 0.2, ticker_sentiment_label: 3 }],
        topics: [null, { relevance_score: '1' }, { topic: 'IPO' }],
        authors: ['A', 2, null, 'B'],
        overall_sentiment_score: Infinity,
        overall_sentiment_label: 'Bullish'
      },
      { title: 'From a domain', source_domain: 'wire.test', ticker_sentiment: 'none', topics: {}, authors: 'Someone', overall_sentiment_score: 'NaN' },
      { title: 'Anonymous', source: 42 }
    ]
  }
  const feed = await client.newsSentiment({})
  t.equal(feed.dropped, 3)
  t.same(feed.articles[0], {
    title: 'Only a title',
    url: '',
    summary: '',
    source: 'unknown source',
    sourceDomain: null,
    publishedAt: null,
    authors: ['A', 'B'],
    overallSentimentScore: null,
    overallSentimentLabel: 'Bullish',
    topics: [{ topic: 'IPO', relevance: null }],
    tickerSentiment: [{ ticker: 'AAPL', relevance: null, score: 0.2, label: null }]
  })
  t.match(feed.articles[1], { source: 'wire.test', sourceDomain: 'wire.test', topics: [], tickerSentiment: [], authors: [], overallSentimentScore: null, overallSentimentLabel: null })
  t.equal(feed.articles[2]?.source, 'unknown source')
})

t.test('each failure → its kind, a message for the model, retryable only for 5xx', async t => {
  const { upstream, client } = await setup(t)
  const cases: Array<[UpstreamMode, string, RegExp, boolean]> = [
    ['error-message', 'invalid_request', /unknown or delisted ticker/, false],
    ['information-limit', 'daily_limit', /daily request limit/, false],
    ['information-demo', 'demo_key', /demo key/, false],
    ['information-premium', 'premium_only', /premium plans/, false],
    ['note', 'rate_limited', /rate limit reached/, false],
    ['http-429', 'rate_limited', /rate limiting this server/, false],
    ['http-404', 'bad_response', /answered HTTP 404/, false],
    ['http-500', 'unavailable', /unavailable \(HTTP 500\)/, true],
    ['http-503', 'unavailable', /unavailable \(HTTP 503\)/, true],
    ['bad-json', 'bad_response', /unreadable/, false],
    ['not-object', 'bad_response', /unexpected response/, false],
    ['no-feed', 'bad_response', /without a news feed/, false]
  ]
  for (const [mode, kind, message, retryable] of cases) {
    upstream.mode = mode
    const err = await client.newsSentiment({ tickers: ['AAPL'] }).then(() => null, (e: unknown) => e)
    t.type(err, AlphaVantageError, mode)
    t.match(err, { kind, message, retryable, name: 'AlphaVantageError' }, mode)
    t.notMatch((err as Error).message, KEY, 'never the key, even when the upstream echoes it')
  }
  upstream.body = null
  upstream.mode = 'ok'
  await t.rejects(client.newsSentiment({}), { kind: 'bad_response', message: /unexpected response/ }, 'JSON null')
})

t.test('Information messages as Alpha Vantage writes them', async t => {
  const kindOf = (Information: string): string | undefined => classifyUpstreamMessage({ Information })?.kind
  t.equal(kindOf('Thank you for using Alpha Vantage! Our standard API rate limit is 25 requests per day. Please subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to instantly remove all daily rate limits.'), 'daily_limit')
  t.equal(kindOf('Thank you for using Alpha Vantage! Please consider spreading out your free API requests more sparingly (1 request per second). You may subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to lift the free key rate limit (25 requests per day), and get many more.'), 'rate_limited')
  t.equal(kindOf('Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute and 500 calls per day.'), 'rate_limited')
  t.equal(kindOf('Thank you for using Alpha Vantage! This is a premium endpoint. You may subscribe to any of the premium plans at https://www.alphavantage.co/premium/ to instantly unlock all premium endpoints'), 'premium_only')
  t.equal(kindOf('The **demo** API key is for demo purposes only. Please claim your free API key at (https://www.alphavantage.co/support/#api-key) to explore our full API offerings. It takes fewer than 20 seconds.'), 'demo_key')
  t.equal(kindOf('You have exceeded the rate limit for your key.'), 'rate_limited')
  t.equal(kindOf('Invalid inputs. Please refer to the API documentation.'), 'invalid_request')
  t.equal(kindOf('Something new.'), 'unavailable')
  t.equal(kindOf('We have detected your API key as DEMOCRATIC-1 and our standard API rate limit is 25 requests per day.'), 'daily_limit', 'a key that contains "demo" is not the demo key')
  t.equal(classifyUpstreamMessage({ feed: [] }), null)
  t.equal(classifyUpstreamMessage({ Information: 42 }), null, 'only strings are messages')
})

t.test('numbers as Alpha Vantage writes them', async t => {
  t.equal(toNumber('0.343409'), 0.343409)
  t.equal(toNumber(' 0.5 '), 0.5)
  t.equal(toNumber(-0.1), -0.1)
  for (const bad of ['', '  ', 'abc', NaN, Infinity, null, undefined, {}, true]) t.equal(toNumber(bad), null, String(bad))
})

t.test('an oversized body is refused', async t => {
  const { upstream, client } = await setup(t, { maxBytes: 4096 })
  upstream.body = { feed: [{ title: 'x', summary: 'y'.repeat(100_000) }] }
  await t.rejects(client.newsSentiment({}), { kind: 'bad_response', message: /oversized response/, retryable: false })
  upstream.body = newsFixture
  upstream.mode = 'ok'
  const small = new AlphaVantageClient({ baseUrl: upstream.url, apiKey: KEY, timeoutMs: 1000, maxConnections: 1, maxBytes: Buffer.byteLength(JSON.stringify(newsFixture)) })
  t.teardown(() => small.close())
  t.equal((await small.newsSentiment({})).articles.length > 0, true, 'a body of exactly maxBytes is read')
})

t.test('timeouts are retryable and say how long', async t => {
  const { upstream, client } = await setup(t, { timeoutMs: 100 })
  upstream.mode = 'hang'
  const started = Date.now()
  await t.rejects(client.newsSentiment({}), { kind: 'unavailable', message: 'Alpha Vantage did not answer within 0.1 s; try again shortly.', retryable: true })
  t.ok(Date.now() - started < 900, 'within about the timeout')
})

t.test('a body that stalls mid-way times out too', async t => {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.write('{"feed": [')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const client = new AlphaVantageClient({ baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/query`, apiKey: KEY, timeoutMs: 150, maxConnections: 1 })
  t.teardown(async () => {
    await client.close()
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
  })
  await t.rejects(client.newsSentiment({}), { kind: 'unavailable', retryable: true, message: /did not answer within 0\.15 s/ })
})

t.test('unreachable, and cancelled by the caller', async t => {
  const probe = createServer()
  await new Promise<void>(resolve => probe.listen(0, '127.0.0.1', resolve))
  const port = (probe.address() as AddressInfo).port
  await new Promise(resolve => probe.close(resolve))
  const client = new AlphaVantageClient({ baseUrl: `http://127.0.0.1:${port}/query`, apiKey: KEY, timeoutMs: 1000, maxConnections: 1 })
  t.teardown(() => client.close())
  await t.rejects(client.newsSentiment({}), { kind: 'unavailable', message: /unreachable/, retryable: false })

  const { upstream, client: hanging } = await setup(t)
  upstream.mode = 'hang'
  const controller = new AbortController()
  const pending = hanging.newsSentiment({}, { signal: controller.signal })
  setTimeout(() => controller.abort(), 20)
  await t.rejects(pending, { kind: 'unavailable', message: 'The request was cancelled.', retryable: false })
})
