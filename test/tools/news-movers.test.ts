import t, { type Test } from 'tap'
import { buildApp } from '../helpers/build-app.js'
import { referenceLabel, toolCaller } from '../helpers/news-tools.js'
import { loadFixture, type RawArticle } from '../helpers/trend-reference.js'

const TOOL = 'get_news_movers'
const fixture = loadFixture('news-movers.json')
const WINDOW = { timeFrom: '2024-05-20T00:00Z', timeTo: '2024-05-21T00:00Z' }

interface Row { ticker: string, articles: number, score: number, relevance: number }

/** Tallies from the raw fixture: Σ relevance × score / Σ relevance over entries with relevance > 0. */
function expectedRows (feed: RawArticle[], minArticles: number): { seen: number, rows: Row[] } {
  const tally: Record<string, { w: number, ws: number, n: number }> = {}
  for (const a of feed) {
    for (const e of a.ticker_sentiment as RawArticle[]) {
      const r = Number(e.relevance_score)
      if (!(r > 0)) continue
      tally[e.ticker] ??= { w: 0, ws: 0, n: 0 }
      tally[e.ticker]!.w += r
      tally[e.ticker]!.ws += r * Number(e.ticker_sentiment_score)
      tally[e.ticker]!.n++
    }
  }
  const rows = Object.entries(tally).filter(([, v]) => v.n >= minArticles)
    .map(([ticker, v]) => ({ ticker, articles: v.n, score: v.ws / v.w, relevance: v.w / v.n }))
  return { seen: Object.keys(tally).length, rows }
}

function compareRows (t: Test, got: any[], want: Row[], what: string): void {
  t.same(got.map(r => r.ticker), want.map(r => r.ticker), `${what}: ${want.map(r => r.ticker).join(', ')}`)
  want.forEach((w, i) => {
    t.equal(got[i].articles, w.articles)
    t.ok(Math.abs(got[i].score - w.score) < 1e-12, `${what} ${w.ticker} score`)
    t.ok(Math.abs(got[i].relevance - w.relevance) < 1e-12, `${what} ${w.ticker} relevance`)
    t.equal(got[i].label, referenceLabel(w.score))
  })
}

// Ties broken as documented: more articles first, then the symbol.
const byMentions = (a: Row, b: Row): number => b.articles - a.articles || a.ticker.localeCompare(b.ticker)

t.test('ranked three ways, ties settled, tickers below the minimum left out', async t => {
  const ctx = await buildApp(t)
  ctx.upstream.body = fixture
  const call = await toolCaller(ctx)
  const res = await call(TOOL, { topics: ['technology'], ...WINDOW, minArticles: 3, top: 5 })
  t.equal(res.result?.isError, undefined, res.text)
  const out = res.result?.structuredContent
  const { seen, rows } = expectedRows(fixture.feed, 3)
  t.equal(out.tickersSeen, seen)
  t.equal(out.ranked, rows.length)
  t.equal(out.minArticles, 3)
  compareRows(t, out.mostMentioned, [...rows].sort(byMentions).slice(0, 5), 'most mentioned')
  compareRows(t, out.mostBullish, rows.filter(r => r.score > 0).sort((a, b) => b.score - a.score || byMentions(a, b)).slice(0, 5), 'most bullish')
  compareRows(t, out.mostBearish, rows.filter(r => r.score < 0).sort((a, b) => a.score - b.score || byMentions(a, b)).slice(0, 5), 'most bearish')
  // What the fixture was written to exercise:
  t.same(rows.filter(r => r.ticker === 'AAA' || r.ticker === 'BBB').map(r => r.articles), [4, 4], 'AAA and BBB tie on mentions')
  const bbb = rows.find(r => r.ticker === 'BBB')!
  const ccc = rows.find(r => r.ticker === 'CCC')!
  t.ok(Math.abs(bbb.score - ccc.score) < 1e-12, 'BBB and CCC tie on score')
  t.notOk(out.mostBullish.some((r: Row) => ['DDD', 'EEE', 'GGG'].includes(r.ticker)), 'below the minimum (2 and 1 articles) or never relevant: not ranked')
  t.equal(out.articlesConsidered, fixture.feed.length)
  t.equal(out.complete, true)

  const lines = res.text.split('\n')
  t.match(lines[0], `technology news: ${fixture.feed.length} articles`)
  t.match(lines[0], `${seen} tickers scored, ${rows.length} with at least 3 articles ranked.`)
  t.match(lines[1], /^Most mentioned \(articles, weighted sentiment\): AAA 4 \(/)
  const params = ctx.upstream.hits[0]!.params
  t.equal(params.get('topics'), 'technology')
  t.equal(params.get('limit'), '1000')

  // minArticles 1: the one glowing article counts.
  const loose = await call(TOOL, { topics: ['technology'], ...WINDOW, minArticles: 1, top: 1 })
  const all = expectedRows(fixture.feed, 1).rows
  compareRows(t, loose.result?.structuredContent.mostBullish, all.filter(r => r.score > 0).sort((a, b) => b.score - a.score || byMentions(a, b)).slice(0, 1), 'loose most bullish')
  t.equal(ctx.upstream.hits.length, 1, 'another view of the same feed: no upstream call')

  const none = await call(TOOL, { topics: ['technology'], ...WINDOW, minArticles: 50 })
  t.same(none.result?.structuredContent.mostMentioned, [])
  t.match(none.text, 'Most mentioned (articles, weighted sentiment): none')
  t.match(none.text, 'No ticker reached 50 articles: lower minArticles or widen the window.')
})

t.test('the whole market, from the same feed as get_market_news', async t => {
  const ctx = await buildApp(t)
  ctx.upstream.body = fixture
  const call = await toolCaller(ctx)
  const market = await call(TOOL, { timeFrom: '24h' })
  t.equal(market.result?.structuredContent.topics.length, 0)
  t.match(market.text, /^Market news: /)
  t.equal(ctx.upstream.hits[0]!.params.get('topics'), null, 'no topic: the whole market')
  t.equal(ctx.upstream.hits[0]!.params.get('tickers'), null)
  t.equal(market.result?.structuredContent.window.to, null)

  t.notOk((await call('get_market_news', { topics: ['technology', 'earnings'], timeFrom: '2024-05-20T00:00Z' })).result?.isError)
  const movers = await call(TOOL, { topics: ['earnings', 'technology'], timeFrom: '2024-05-20T00:00Z' })
  t.equal(movers.result?.structuredContent.freshness.cached, true, 'get_market_news already asked this question')
  t.equal(ctx.upstream.hits.length, 2)
})

t.test('bad arguments are refused before any upstream call', async t => {
  const ctx = await buildApp(t)
  const call = await toolCaller(ctx)
  for (const [args, message] of [
    [{ minArticles: 0 }, /minArticles: /],
    [{ top: 21 }, /top: /],
    [{ topics: ['gossip'] }, /topics\.0: /],
    [{ topics: [] }, /topics: /],
    [{ timeFrom: 'soon' }, /timeFrom: must be an ISO 8601 time/]
  ] as Array<[unknown, RegExp]>) {
    const a = await call(TOOL, args)
    t.equal(a.error?.code, -32602, JSON.stringify(args))
    t.match(a.error?.message, message)
  }
  t.equal(ctx.upstream.hits.length, 0)
})
