import t from 'tap'
import { NewsResponder } from '../../../lib/news/responder.js'
import { AlphaVantageClient, AlphaVantageError, type NewsFeed } from '../../../lib/news/alpha-vantage.js'
import type { NewsAnswer, NewsService } from '../../../lib/news/service.js'
import { ToolError } from '../../../lib/mcp/tools.js'
import { analyseTickers, presentTickers, type NewsSentimentResult } from '../../../tools/news-sentiment.js'
import { analyseTopics, presentTopics } from '../../../tools/market-news.js'
import { FakeAlphaVantage, newsFixture } from '../../helpers/fake-alpha-vantage.js'

function answerFor (feed: NewsFeed, over: Partial<NewsAnswer> = {}): NewsAnswer {
  return {
    key: 'AAPL||||LATEST|50',
    feed,
    fetchedAt: '2024-07-12T18:30:00Z',
    ageSeconds: 3,
    cached: true,
    stale: false,
    staleReason: undefined,
    quota: { state: 'ok', used: 1, limit: 25, remaining: 24, resetsAt: '2024-07-13T00:00:00.000Z' },
    ...over
  }
}

interface S { n: number, freshness: unknown, quota: unknown }

t.test('the analysis is made once per cached answer; the result is reused while freshness and quota are unchanged', async t => {
  const feed: NewsFeed = { articles: [], dropped: 0, bytes: 10 }
  let next = answerFor(feed)
  const news = { query: async () => next } as unknown as NewsService
  const responder = new NewsResponder<S>(news)
  let analyses = 0
  let presents = 0
  const analyse = (): { bytes: number, n: number } => { analyses++; return { bytes: 10, n: 42 } }
  const present = (a: { n: number }, _feed: NewsFeed, limit = 1): { fields: { n: number }, lead: string, body: string } => { presents++; return { fields: { n: a.n * limit }, lead: 'lead line', body: 'body' } }
  const signal = { signal: new AbortController().signal }

  const first = await responder.respond({}, 'k', signal, analyse, present)
  const second = await responder.respond({}, 'k', signal, analyse, present)
  t.equal(second, first, 'the same result object: its serialization can be reused')
  t.equal(analyses, 1)
  t.equal(presents, 1)
  t.equal((first.content[0] as { text: string }).text, 'lead line\nbody')
  t.match(first.structuredContent, { n: 42, freshness: { ageSeconds: 3, cached: true, stale: false }, quota: { used: 1 } })

  next = answerFor(feed, { ageSeconds: 4 })
  const older = await responder.respond({}, 'k', signal, analyse, present)
  t.not(older, first, 'a new age makes a new result')
  t.equal(analyses, 1, 'but not a new analysis')
  t.equal((older.structuredContent.freshness as { ageSeconds: number }).ageSeconds, 4)

  next = answerFor(feed, { ageSeconds: 4, quota: { state: 'near', used: 20, limit: 25, remaining: 5, resetsAt: '2024-07-13T00:00:00.000Z' } })
  const near = await responder.respond({}, 'k', signal, analyse, present)
  t.match((near.content[0] as { text: string }).text, /^lead line\nNote: 20 of 25 Alpha Vantage requests used today/, 'notices sit between the lead and the body')

  const other = await responder.respond({}, 'other order|3', signal, analyse, (a, f) => present(a, f, 3))
  t.equal(analyses, 1, 'another order or limit of the same question shares the analysis')
  t.equal(other.structuredContent.n, 126)
  next = answerFor({ articles: [], dropped: 0, bytes: 10 }, { fetchedAt: '2024-07-12T18:40:00Z' })
  await responder.respond({}, 'k', signal, analyse, present)
  t.equal(analyses, 2, 'a new upstream answer makes a new analysis')
  next = answerFor(feed, { key: 'MSFT||||LATEST|50' })
  await responder.respond({}, 'k', signal, analyse, present)
  t.equal(analyses, 3, 'another question its own')
})

t.test('upstream errors become tool errors; others pass through', async t => {
  const failing = (err: Error): NewsService => ({ query: async () => { throw err } }) as unknown as NewsService
  const signal = { signal: new AbortController().signal }
  const analyse = (): { bytes: number } => ({ bytes: 1 })
  const present = (): { fields: { n: number }, lead: string, body: string } => ({ fields: { n: 1 }, lead: '', body: '' })
  await t.rejects(new NewsResponder<S>(failing(new AlphaVantageError('rate_limited', 'slow down'))).respond({}, 'k', signal, analyse, present), new ToolError('slow down'))
  const boom = new TypeError('bug')
  await t.rejects(new NewsResponder<S>(failing(boom)).respond({}, 'k', signal, analyse, present), boom)
})

function permutations<T> (items: T[]): T[][] {
  if (items.length <= 1) return [items]
  return items.flatMap((item, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map(rest => [item, ...rest]))
}

t.test('every ordering × every limit of one cached question: the memos stay within their bounds (issue 8.2)', async t => {
  const upstream = await FakeAlphaVantage.start()
  t.teardown(async () => { await upstream.close() })
  // A realistic feed: the fixture's articles, repeated to 50 (the upstream's page).
  upstream.body = { ...newsFixture, feed: Array.from({ length: 50 }, (_, i) => ({ ...newsFixture.feed[i % newsFixture.feed.length], title: `Article ${i}` })) }
  const client = new AlphaVantageClient({ baseUrl: upstream.url, apiKey: 'k', timeoutMs: 2000, maxConnections: 1 })
  t.teardown(async () => { await client.close() })
  const feed = await client.newsSentiment({})
  const answer = answerFor(feed)
  const news = { query: async () => answer } as unknown as NewsService
  const bounds = { maxAnalyses: 16, maxAnalysisBytes: 1024 * 1024, maxResults: 64, maxResultBytes: 2 * 1024 * 1024 }
  const responder = new NewsResponder<NewsSentimentResult>(news, bounds)

  const orderings = permutations(['AAPL', 'MSFT', 'NVDA', 'GOOG', 'AMZN'])
  let calls = 0
  for (const tickers of orderings) {
    for (const limit of [1, 5, 10, 25, 50]) {
      const result = await responder.respond({}, `${tickers.join(',')}|${limit}`, {}, f => analyseTickers(tickers, f), (a, f) => presentTickers(a, tickers, limit, f))
      calls++
      t.equal(result.structuredContent.articles.length, limit, 'each call gets its limit')
      t.same(result.structuredContent.tickers, tickers, 'and its own order')
      if (calls % 100 === 0) {
        const stats = responder.memoStats
        t.ok(stats.results <= bounds.maxResults && stats.resultBytes <= bounds.maxResultBytes, `after ${calls} calls: ${stats.results} results, ${stats.resultBytes} bytes`)
      }
    }
  }
  t.equal(calls, 600)
  const stats = responder.memoStats
  t.equal(stats.analyses, 1, 'one analysis for every spelling of the question')
  t.ok(stats.results <= 64, `results bounded in entries (${stats.results})`)
  t.ok(stats.resultBytes <= bounds.maxResultBytes, `results bounded in bytes (${stats.resultBytes})`)
  t.ok(stats.resultBytes > 0)
})

t.test('get_market_news: each caller sees its own topic order (issue 8.2)', async t => {
  const feed: NewsFeed = { articles: [], dropped: 0, bytes: 10 }
  const news = { query: async () => answerFor(feed, { key: '|earnings,ipo|||LATEST|50' }) } as unknown as NewsService
  const responder = new NewsResponder<{ topics: string[], freshness: unknown, quota: unknown }>(news)
  const ask = async (topics: string[]): Promise<string[]> => (await responder.respond({}, `${topics.join(',')}|5`, {}, f => analyseTopics(topics, f), (a, f) => presentTopics(a, topics, 5, f))).structuredContent.topics
  t.same(await ask(['ipo', 'earnings']), ['ipo', 'earnings'])
  t.same(await ask(['earnings', 'ipo']), ['earnings', 'ipo'], 'not the first caller\'s order')
  t.same(await ask(['ipo', 'earnings']), ['ipo', 'earnings'])
})
