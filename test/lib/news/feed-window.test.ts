import t from 'tap'
import type { Article, NewsFeed, NewsQuery } from '../../../lib/news/alpha-vantage.js'
import { MemoryResponseCache } from '../../../lib/news/cache.js'
import { NewsService } from '../../../lib/news/service.js'
import { WideFeedIndex, coverageNote, coverageOf, familyKey, narrowFeed } from '../../../lib/news/feed-window.js'
import { referenceStamp } from '../../helpers/eastern-reference.js'

const MIN = 60_000
const T0 = Date.UTC(2024, 4, 20, 12) // 08:00 EDT

function article (i: number, at: number | null): Article {
  return {
    title: `a${i}`,
    url: '',
    summary: '',
    source: 's',
    sourceDomain: null,
    publishedAt: at === null ? null : new Date(at).toISOString().replace('.000Z', 'Z'),
    authors: [],
    overallSentimentScore: 0,
    overallSentimentLabel: null,
    topics: [],
    tickerSentiment: [{ ticker: 'AAPL', relevance: 1, score: 0.1, label: null }]
  }
}

/** n articles a minute apart, newest first (Alpha Vantage's LATEST), the newest at `newest`. */
function feed (n: number, newest: number, step = MIN): NewsFeed {
  return { articles: Array.from({ length: n }, (_, i) => article(i, newest - i * step)), dropped: 0, bytes: n * 2000 }
}

const stamp = (ms: number): string => referenceStamp(ms)
const titles = (f: NewsFeed | undefined): string[] | undefined => f?.articles.map(a => a.title)

t.test('a complete feed answers any window inside its own, and smaller limits', async t => {
  const wide: NewsQuery = { tickers: ['AAPL'], sort: 'LATEST', limit: 1000, timeFrom: stamp(T0 - 60 * MIN) }
  const f = feed(50, T0) // 50 < 1000: everything there is
  t.equal(narrowFeed(f, wide, { ...wide }), f, 'the same question: the same feed')
  t.same(titles(narrowFeed(f, wide, { ...wide, limit: 3 })), ['a0', 'a1', 'a2'], 'a smaller limit: the first n')
  t.same(titles(narrowFeed(f, wide, { ...wide, timeFrom: stamp(T0 - 2 * MIN) })), ['a0', 'a1', 'a2'], 'a later start')
  t.same(titles(narrowFeed(f, wide, { ...wide, timeFrom: stamp(T0 - 10 * MIN), timeTo: stamp(T0 - 8 * MIN) })), ['a8', 'a9', 'a10'],
    'a closed window inside: time_to takes its whole minute')
  t.same(titles(narrowFeed(f, wide, { ...wide, timeFrom: stamp(T0 - 10 * MIN), limit: 2 })), ['a0', 'a1'])
  t.equal(narrowFeed(f, wide, { ...wide, timeFrom: stamp(T0 - 61 * MIN) }), undefined, 'an earlier start reaches outside')
  t.equal(narrowFeed(f, wide, { ...wide, timeFrom: undefined }), undefined, 'no start at all reaches outside')
  t.equal(narrowFeed(f, wide, { ...wide, limit: 1001 }), undefined, 'more articles than were asked for')
  t.equal(narrowFeed(f, { ...wide, timeTo: stamp(T0) }, { ...wide }), undefined, '"up to now" is not answered by a closed window')
  t.equal(narrowFeed(f, { ...wide, timeTo: stamp(T0 - 5 * MIN) }, { ...wide, timeTo: stamp(T0 - 4 * MIN) }), undefined, 'a later end reaches outside')
  t.same(titles(narrowFeed(f, { ...wide, timeTo: stamp(T0 - 5 * MIN) }, { ...wide, timeFrom: stamp(T0 - 7 * MIN), timeTo: stamp(T0 - 6 * MIN) })), ['a6', 'a7'])
  const undated: NewsFeed = { articles: [article(0, null), ...feed(3, T0).articles], dropped: 0, bytes: 0 }
  t.same(titles(narrowFeed(undated, wide, { ...wide, timeFrom: stamp(T0 - 30 * MIN) })), ['a0', 'a1', 'a2'], 'an undated article cannot be placed in a narrower window')
  t.same(titles(narrowFeed(undated, wide, { ...wide, limit: 2 })), ['a0', 'a0'], 'but the same window keeps it')
})

t.test('a full feed (the limit reached) answers only inside what it holds', async t => {
  const latest: NewsQuery = { tickers: ['AAPL'], sort: 'LATEST', limit: 10 }
  const f = feed(10, T0) // a0 at T0 … a9 at T0 − 9 min: older ones were cut
  t.same(titles(narrowFeed(f, latest, { ...latest, timeFrom: stamp(T0 - 8 * MIN) })), ['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7', 'a8'])
  t.equal(narrowFeed(f, latest, { ...latest, timeFrom: stamp(T0 - 9 * MIN) }), undefined, 'the oldest instant itself may have lost articles')
  t.same(titles(narrowFeed(f, latest, { ...latest, limit: 2 })), ['a0', 'a1'], 'the same window, fewer articles: fine for any sort')

  const earliest: NewsQuery = { ...latest, sort: 'EARLIEST', timeFrom: stamp(T0 - 60 * MIN) }
  const old = { ...f, articles: [...f.articles].reverse() } // oldest first
  t.same(titles(narrowFeed(old, earliest, { ...earliest, timeTo: stamp(T0 - 2 * MIN) })), ['a9', 'a8', 'a7', 'a6', 'a5', 'a4', 'a3', 'a2'])
  t.equal(narrowFeed(old, earliest, { ...earliest, timeTo: stamp(T0) }), undefined, 'EARLIEST cut the newest ones')
  t.equal(narrowFeed(old, earliest, { ...earliest, timeFrom: stamp(T0 - 5 * MIN) }), undefined, '"up to now" from an EARLIEST feed that hit its limit')

  const relevance: NewsQuery = { ...latest, sort: 'RELEVANCE' }
  t.equal(narrowFeed(f, relevance, { ...relevance, timeFrom: stamp(T0 - 2 * MIN) }), undefined, 'RELEVANCE picked across the window: nothing to cut')

  t.same(coverageOf(f, 10), { complete: false, coverageFrom: f.articles[9]!.publishedAt })
  t.same(coverageOf(feed(9, T0), 10), { complete: true, coverageFrom: null })
  t.same(coverageOf({ articles: [article(0, null)], dropped: 0, bytes: 0 }, 1), { complete: false, coverageFrom: null })
  t.equal(coverageNote({ complete: true, coverageFrom: null }, 10), null)
  t.equal(coverageNote({ complete: false, coverageFrom: null }, 10), 'Note: Alpha Vantage returned its maximum of 10 articles; they reach back to an unknown time only, so the window\'s earlier part is incomplete.')

  // A query without limit or sort is Alpha Vantage's default: 50, LATEST.
  const plain: NewsQuery = { tickers: ['AAPL'] }
  const full = { articles: [article(99, null), ...feed(49, T0).articles], dropped: 0, bytes: 0 }
  t.same(titles(narrowFeed(full, plain, { ...plain, timeFrom: stamp(T0 - 2 * MIN) })), ['a0', 'a1', 'a2'], 'the undated one is neither oldest nor in the window')
  t.equal(narrowFeed(full, plain, { ...plain, timeFrom: stamp(T0 - 48 * MIN) }), undefined)
})

t.test('the family is the question without its window and limit', async t => {
  t.equal(familyKey({ tickers: ['msft', 'AAPL'], topics: ['ipo', 'earnings'] }), familyKey({ tickers: ['AAPL', 'MSFT'], topics: ['earnings', 'ipo'], sort: 'LATEST', limit: 3, timeFrom: '20240101T0000' }))
  t.not(familyKey({ tickers: ['AAPL'] }), familyKey({ tickers: ['AAPL'], sort: 'EARLIEST' }))
  t.not(familyKey({ topics: ['ipo'] }), familyKey({ tickers: ['IPO'] }))
})

t.test('through the news service: one upstream call, bounded, forgetting what the cache dropped', async t => {
  let now = T0
  const calls: NewsQuery[] = []
  const client = { newsSentiment: async (q: NewsQuery) => { calls.push(q); return feed(100, now) } }
  const cache = new MemoryResponseCache<NewsFeed>({ maxEntries: 2, maxBytes: 1e9, retentionMs: 86_400_000, now: () => now })
  const service = new NewsService({ client, cache, ttlMs: 300_000, dailyLimit: 25, retries: 0, retryBaseMs: 0, circuitThreshold: 5, circuitCooldownMs: 1000, now: () => now })
  const week: NewsQuery = { tickers: ['AAPL'], sort: 'LATEST', limit: 1000, timeFrom: stamp(T0 - 7 * 86_400_000) }
  const day: NewsQuery = { ...week, timeFrom: stamp(T0 - 30 * MIN) }

  t.equal(await service.cached(week), undefined, 'nothing cached yet')
  await service.query(week)
  const cut = await service.query(day)
  t.equal(calls.length, 1, 'the day is cut from the week')
  t.equal(cut.cached, true)
  t.equal(cut.feed.articles.length, 31)
  t.equal((await service.query(day)).feed, cut.feed, 'the same cut again: the same feed object (view memos hold)')
  t.equal((await service.cached(day))?.feed, cut.feed, 'and cached() finds it without a call')

  now += 300_000
  t.equal(await service.cached(day), undefined, 'a stale wide feed answers nothing narrower')
  await service.query(day)
  t.equal(calls.length, 2)

  // The cache keeps two entries: the week is evicted, and the index forgets it when met.
  await service.query({ ...week, tickers: ['MSFT'] })
  await service.query({ ...week, tickers: ['TSM'] })
  const later = { ...week, timeFrom: stamp(T0 - 86_400_000) }
  await service.query(later)
  t.equal(calls.length, 5, 'the evicted week no longer answers')

  const index = new WideFeedIndex(2)
  index.remember('a', { tickers: ['A'] })
  index.remember('b', { tickers: ['B'] })
  index.remember('a', { tickers: ['A'] })
  index.remember('c', { tickers: ['C'] })
  t.equal(index.families, 2, 'bounded in families, least recently stored dropped')
  t.equal(await index.find({ tickers: ['B'], limit: 10 }, 'b2', async () => { throw new Error('not asked') }, () => true), undefined, 'B was dropped')
  for (let i = 0; i < 10; i++) index.remember(`a${i}`, { tickers: ['A'], timeFrom: stamp(T0 - i * MIN) })
  const seen: string[] = []
  await index.find({ tickers: ['A'], limit: 10 }, 'x', async key => { seen.push(key); return undefined }, () => true)
  t.equal(seen.length, 8, 'at most 8 windows per family')

  // Cuts per wide feed are bounded too: the 17th asked window drops the first one's cut.
  const one = new WideFeedIndex(4)
  const wide = feed(100, T0)
  const wideQuery: NewsQuery = { tickers: ['AAPL'], sort: 'LATEST', limit: 1000 }
  one.remember('wide', wideQuery)
  const get = async (): Promise<{ value: NewsFeed, storedAt: number, bytes: number }> => ({ value: wide, storedAt: T0, bytes: 0 })
  const first = await one.find({ ...wideQuery, timeFrom: stamp(T0 - MIN) }, 'k0', get, () => true)
  t.equal((await one.find({ ...wideQuery, timeFrom: stamp(T0 - MIN) }, 'k0', get, () => true))?.feed, first?.feed, 'kept')
  for (let i = 1; i <= 16; i++) await one.find({ ...wideQuery, timeFrom: stamp(T0 - (i + 1) * MIN) }, `k${i}`, get, () => true)
  t.not((await one.find({ ...wideQuery, timeFrom: stamp(T0 - MIN) }, 'k0', get, () => true))?.feed, first?.feed, 'cut again after 16 others')
})
