import t from 'tap'
import { buildApp } from '../helpers/build-app.js'
import { referenceLabel, toolCaller } from '../helpers/news-tools.js'
import { expectedBuckets, loadFixture, scoredEntries, weighted } from '../helpers/trend-reference.js'

const TOOL = 'compare_news_sentiment'
const fixture = loadFixture('news-movers.json')
const WINDOW = { timeFrom: '2024-05-20T00:00Z', timeTo: '2024-05-21T00:00Z' }

/** Each ticker's own feed, as Alpha Vantage answers `tickers=X`: the articles that name it. */
function feedFor (params: URLSearchParams): unknown {
  const ticker = params.get('tickers')
  return { ...fixture, feed: fixture.feed.filter(a => a.ticker_sentiment.some((e: { ticker: string }) => e.ticker === ticker)) }
}

function expected (ticker: string): { score: number | null, articles: number } {
  const entries = scoredEntries(fixture.feed, ticker)
  return { score: weighted(entries), articles: entries.length }
}

t.test('side by side, each from its own feed, most bullish first', async t => {
  const ctx = await buildApp(t)
  ctx.upstream.bodyFor = feedFor
  const call = await toolCaller(ctx)
  const res = await call(TOOL, { tickers: ['aaa', 'FFF', 'CCC'], ...WINDOW })
  t.equal(res.result?.isError, undefined, res.text)
  const out = res.result?.structuredContent
  t.equal(ctx.upstream.hits.length, 3, 'one upstream call per ticker')
  t.same(ctx.upstream.hits.map(h => h.params.get('tickers')).sort(), ['AAA', 'CCC', 'FFF'], 'each asked alone, not as an AND list')
  t.same(out.upstreamCalls, { needed: 3, cached: [], remainingBefore: 25 })

  const want = ['AAA', 'FFF', 'CCC'].map(ticker => ({ ticker, ...expected(ticker) }))
    .sort((a, b) => (b.score ?? -Infinity) - (a.score ?? -Infinity) || b.articles - a.articles)
  t.same(out.comparison.map((r: { ticker: string }) => r.ticker), want.map(w => w.ticker), 'ranked by weighted score')
  want.forEach((w, i) => {
    const row = out.comparison[i]
    t.ok(Math.abs(row.score - (w.score as number)) < 1e-12, `${w.ticker}: ${row.score} ≈ ${w.score}`)
    t.equal(row.articles, w.articles)
    t.equal(row.label, referenceLabel(w.score as number))
    t.equal(row.cached, false)
  })
  t.equal(out.leader, want[0]!.ticker)
  t.same(out.failed, [])
  t.equal(out.quota.used, 3)
  const lines = res.text.split('\n')
  t.equal(lines[0], `AAA or FFF or CCC since 2024-05-20T00:00:00Z: ${want[0]!.ticker} reads most bullish (${referenceLabel(want[0]!.score as number)}).`)
  t.match(lines.at(-1), 'Upstream: 3 Alpha Vantage calls for this comparison; 22 of 25 left today.')

  // Cached tickers cost nothing; the same ticker through get_news_sentiment is the same question.
  const again = await call(TOOL, { tickers: ['CCC', 'BBB'], ...WINDOW })
  t.same(again.result?.structuredContent.upstreamCalls, { needed: 1, cached: ['CCC'], remainingBefore: 22 })
  t.equal(ctx.upstream.hits.length, 4)
  t.match(again.text, 'Upstream: 1 Alpha Vantage call for this comparison (CCC from the cache); 21 of 25 left today.')
  const single = await call('get_news_sentiment', { ticker: 'BBB', ...WINDOW })
  t.equal(single.result?.structuredContent.freshness.cached, true)
  t.equal(ctx.upstream.hits.length, 4)
})

t.test('says the cost beforehand, and refuses politely when it would exhaust the day', async t => {
  const ctx = await buildApp(t, { ALPHA_VANTAGE_DAILY_LIMIT: '3' })
  ctx.upstream.bodyFor = feedFor
  const call = await toolCaller(ctx)
  t.notOk((await call('get_news_sentiment', { ticker: 'AAA', ...WINDOW })).result?.isError)

  const dry = await call(TOOL, { tickers: ['AAA', 'BBB'], ...WINDOW, dryRun: true })
  t.equal(dry.text, 'Comparing AAA, BBB would spend 1 Alpha Vantage call (AAA cached); 2 left today.')
  t.same(dry.result?.structuredContent.comparison, [])
  t.equal(ctx.upstream.hits.length, 1, 'a dry run calls nothing')

  const refused = await call(TOOL, { tickers: ['BBB', 'CCC', 'AAA'], ...WINDOW })
  t.equal(refused.result?.isError, true)
  t.equal(refused.text, 'Comparing BBB, CCC, AAA needs 2 Alpha Vantage calls (one per ticker; AAA cached), and only 2 are left today: ' +
    'that would exhaust the day\'s quota for everyone. Compare fewer tickers (at most 1 not cached), or ask again after ' +
    `${refused.text.match(/after (\S+)\.$/)?.[1]}.`)
  t.equal(ctx.upstream.hits.length, 1, 'refused before any upstream call')
  t.equal(new Date(refused.text.match(/after (\S+)\.$/)![1]!).getUTCHours(), 0, 'the reset is midnight UTC')

  const ok = await call(TOOL, { tickers: ['AAA', 'BBB'], ...WINDOW })
  t.notOk(ok.result?.isError, 'one new ticker of two remaining calls is fine')
  const last = await call(TOOL, { tickers: ['AAA', 'CCC'], ...WINDOW })
  t.match(last.text, /and only 1 is left today: .* Compare only cached tickers, or ask again after /)
  t.notOk((await call('get_news_sentiment', { ticker: 'DDD', ...WINDOW })).result?.isError, 'the last call stays for other questions')
  const spent = await call(TOOL, { tickers: ['AAA', 'EEE'], ...WINDOW })
  t.match(spent.text, /^Comparing AAA, EEE needs 1 Alpha Vantage call \(one per ticker; AAA cached\), and none is left today; the quota starts again at /)
  const dryRefused = await call(TOOL, { tickers: ['AAA', 'EEE'], ...WINDOW, dryRun: true })
  t.match(dryRefused.text, /; 0 left today\. It would be refused: Comparing AAA, EEE needs 1/)
  const allCached = await call(TOOL, { tickers: ['AAA', 'BBB'], ...WINDOW })
  t.notOk(allCached.result?.isError, 'cached tickers need no quota')
  t.equal(ctx.upstream.hits.length, 3)
})

t.test('a ticker Alpha Vantage cannot answer is named; the others are compared', async t => {
  const ctx = await buildApp(t)
  ctx.upstream.bodyFor = feedFor
  ctx.upstream.queue = ['error-message']
  const call = await toolCaller(ctx)
  const res = await call(TOOL, { tickers: ['ZZZZ', 'AAA'], ...WINDOW })
  t.equal(res.result?.isError, undefined)
  const out = res.result?.structuredContent
  t.equal(out.failed.length, 1)
  t.same(out.comparison.map((r: { ticker: string }) => r.ticker).concat(out.failed.map((f: { ticker: string }) => f.ticker)).sort(), ['AAA', 'ZZZZ'])
  t.match(res.text, /: not compared: Alpha Vantage rejected the query/)

  ctx.upstream.mode = 'error-message'
  const none = await call(TOOL, { tickers: ['YYYY', 'XXXX'], ...WINDOW })
  t.equal(none.result?.isError, true)
  t.match(none.text, /^No ticker could be compared: YYYY: Alpha Vantage rejected/)

  // Nothing scored for either: no leader.
  ctx.upstream.mode = 'empty'
  const empty = await call(TOOL, { tickers: ['QQQ', 'RRR'], ...WINDOW })
  t.equal(empty.result?.structuredContent.leader, null)
  t.match(empty.text, /^QQQ or RRR: no scored articles for any of them since /)
})

t.test('the trend per ticker, and stale rows when Alpha Vantage fails', async t => {
  const ctx = await buildApp(t, { NEWS_CACHE_TTL_SEC: '1', ALPHA_VANTAGE_RETRIES: '0' })
  ctx.upstream.bodyFor = feedFor
  const call = await toolCaller(ctx)
  const dry = await call(TOOL, { tickers: ['AAA', 'BBB'], dryRun: true })
  t.equal(dry.text, 'Comparing AAA, BBB would spend 2 Alpha Vantage calls; 25 left today.')
  t.equal(dry.result?.structuredContent.window.to, null, 'no timeTo: up to now')

  // Seven hourly buckets: AAA has articles in both halves (13-14Z and 16Z).
  const from = Date.parse('2024-05-20T12:30Z')
  const to = Date.parse('2024-05-20T18:30Z')
  const res = await call(TOOL, { tickers: ['AAA', 'FFF'], timeFrom: '2024-05-20T12:30Z', timeTo: '2024-05-20T18:30Z' })
  const aaa = res.result?.structuredContent.comparison.find((r: { ticker: string }) => r.ticker === 'AAA')
  const buckets = expectedBuckets(fixture.feed, 'AAA', from, to, 'hour')
  t.equal(buckets.length, 7)
  const inside = (a: number, b: number): ReturnType<typeof scoredEntries> => scoredEntries(fixture.feed, 'AAA').filter(e => e.at >= Date.parse(buckets[a]!.start) && e.at < Date.parse(buckets[b]!.end))
  const change = (weighted(inside(4, 6)) as number) - (weighted(inside(0, 2)) as number)
  t.ok(Math.abs(aaa.change - change) < 1e-12, `AAA change ${aaa.change} ≈ ${change}`)
  t.match(res.text, `AAA: ${referenceLabel(expected('AAA').score as number)}`)
  t.match(res.text, new RegExp(`· ${aaa.direction} [+-]\\d\\.\\d{3}`))

  // Past its freshness, Alpha Vantage failing: the last good answers, marked stale.
  await new Promise(resolve => setTimeout(resolve, 1100))
  ctx.upstream.mode = 'http-500'
  const stale = await call(TOOL, { tickers: ['AAA', 'FFF'], timeFrom: '2024-05-20T12:30Z', timeTo: '2024-05-20T18:30Z' })
  t.same(stale.result?.structuredContent.comparison.map((r: { stale: boolean }) => r.stale), [true, true])
  t.match(stale.text, / \(stale\)\n/)
})

t.test('bad arguments are refused before any upstream call', async t => {
  const ctx = await buildApp(t)
  const call = await toolCaller(ctx)
  for (const [args, message] of [
    [{ tickers: ['AAPL'] }, /tickers: /],
    [{ tickers: ['A', 'B', 'C', 'D', 'E', 'F'] }, /tickers: /],
    [{ tickers: ['AAPL', 'aapl'] }, /tickers: must not repeat a ticker/],
    [{ tickers: ['AAPL', 'MS FT'] }, /tickers\.1: must be a ticker symbol/],
    [{ tickers: 'AAPL,MSFT' }, /tickers: /],
    [{ tickers: ['AAPL', 'MSFT'], timeFrom: '2024-05-02', timeTo: '2024-05-01' }, /timeTo: must be later than timeFrom/],
    [{ tickers: ['AAPL', 'MSFT'], dryRun: 'yes' }, /dryRun: /]
  ] as Array<[unknown, RegExp]>) {
    const a = await call(TOOL, args)
    t.equal(a.error?.code, -32602, JSON.stringify(args))
    t.match(a.error?.message, message)
  }
  t.equal(ctx.upstream.hits.length, 0)
})
