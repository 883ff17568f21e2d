import t, { type Test } from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { AlphaVantageClient, type NewsFeed } from '../../../lib/news/alpha-vantage.js'
import { FakeAlphaVantage, newsFixture } from '../../helpers/fake-alpha-vantage.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

function heapUsed (): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

/** The heap a feed keeps: measured as the heap with the feed held, less the heap before it was fetched. */
async function measure (t: Test, body: unknown): Promise<{ feed: { bytes: number, upstreamBytes: number, articles: number }, retained: number }> {
  const upstream = await FakeAlphaVantage.start()
  t.teardown(async () => { await upstream.close() })
  upstream.body = JSON.stringify(body)
  const client = new AlphaVantageClient({ baseUrl: upstream.url, apiKey: 'k', timeoutMs: 10_000, maxConnections: 1, maxBytes: 64 * 1024 * 1024 })
  t.teardown(async () => { await client.close() })
  // Warm up (connections, code). In a function of its own: an async frame
  // keeps the last awaited value, which would hold the warm-up feed.
  const warmUp = async (): Promise<void> => { await client.newsSentiment({}) }
  await warmUp()
  const before = heapUsed()
  const feed: NewsFeed = await client.newsSentiment({})
  const held = heapUsed()
  return { feed: { bytes: feed.bytes, upstreamBytes: feed.upstreamBytes ?? 0, articles: feed.articles.length }, retained: held - before }
}

t.test('the cache counts what a parsed feed keeps, not the body it came from (issue 8.10)', async t => {
  // The review's case: many tiny entries, where the parsed form is several times the body.
  const tiny = { items: '20000', feed: Array.from({ length: 20_000 }, (_, i) => ({ title: `t${i}`, ticker_sentiment: [{ ticker: 'A', relevance_score: '1', ticker_sentiment_score: '0.1', ticker_sentiment_label: 'Neutral' }], topics: [{ topic: 'x', relevance_score: '1' }] })) }
  // And ordinary articles, the fixture's, repeated.
  const ordinary = { ...newsFixture, feed: Array.from({ length: 2000 }, (_, i) => ({ ...newsFixture.feed[i % newsFixture.feed.length], title: `Article ${i}` })) }
  for (const [name, body] of [['tiny entries', tiny], ['ordinary articles', ordinary]] as const) {
    const { feed, retained } = await measure(t, body)
    t.comment(`${name}: ${feed.articles} articles, body ${feed.upstreamBytes} B, measured ${retained} B retained, counted ${feed.bytes} B`)
    // An estimate: it may miss by a few percent (the heap is measured, with its noise); the body size misses by far more.
    t.ok(feed.bytes >= retained * 0.9, `${name}: the count (${feed.bytes}) covers what is kept (${retained})`)
    t.ok(feed.bytes <= retained * 4, `${name}: and is not wildly pessimistic`)
  }
  const tinyFeed = (await measure(t, tiny)).feed
  t.ok(tinyFeed.bytes > tinyFeed.upstreamBytes * 2, 'for tiny entries the body size would undercount by far')
})
