import t, { type Test } from 'tap'
import { buildApp } from '../helpers/build-app.js'
import { referenceStamp } from '../helpers/eastern-reference.js'
import { toolCaller } from '../helpers/news-tools.js'
import { expectedBuckets, loadFixture, scoredEntries, weighted, type ExpectedBucket } from '../helpers/trend-reference.js'
import { referenceLabel } from '../helpers/news-tools.js'

const TOOL = 'get_sentiment_trend'
const fixture = loadFixture('news-trend.json')
const HOUR = 3_600_000

function closeTo (a: number | null, b: number | null): boolean {
  return a === null || b === null ? a === b : Math.abs(a - b) < 1e-12
}

/** Checks a tool's buckets, halves, change and peak against the reference computed from the raw fixture. */
function checkTrend (t: Test, out: any, from: number, to: number, size: 'day' | 'hour'): ExpectedBucket[] {
  const expected = expectedBuckets(fixture.feed, 'NVDA', from, to, size)
  t.equal(out.bucketSize, size)
  t.equal(out.buckets.length, expected.length, `${expected.length} buckets`)
  expected.forEach((e, i) => {
    const got = out.buckets[i]
    t.same({ ...got, score: null }, { ...e, score: null }, `bucket ${e.period}`)
    t.ok(closeTo(got.score, e.score), `bucket ${e.period}: score ${got.score} ≈ ${e.score}`)
  })
  // Halves: the first and last floor(n/2) buckets, from the raw entries inside their spans.
  const half = Math.floor(expected.length / 2)
  const entries = scoredEntries(fixture.feed, 'NVDA').filter(e => e.at >= from && e.at <= to)
  const within = (a: ExpectedBucket, b: ExpectedBucket): typeof entries => entries.filter(e => e.at >= Date.parse(a.start) && e.at < Date.parse(b.end))
  const first = half === 0 ? [] : within(expected[0]!, expected[half - 1]!)
  const last = half === 0 ? [] : within(expected[expected.length - half]!, expected.at(-1)!)
  const firstScore = weighted(first)
  const lastScore = weighted(last)
  t.equal(out.firstPart.articles, first.length)
  t.equal(out.lastPart.articles, last.length)
  t.ok(closeTo(out.firstPart.score, firstScore), 'first part score')
  t.ok(closeTo(out.lastPart.score, lastScore), 'last part score')
  const change = firstScore === null || lastScore === null ? null : lastScore - firstScore
  t.ok(closeTo(out.change, change), `change ${out.change} ≈ ${change}`)
  t.equal(out.direction, change === null ? null : change >= 0.05 ? 'improving' : change <= -0.05 ? 'worsening' : 'steady')
  const whole = weighted(entries)
  t.ok(closeTo(out.whole.score, whole), 'whole window')
  t.equal(out.whole.label, whole === null ? null : referenceLabel(whole))
  t.equal(out.whole.articles, entries.length)
  // The busiest bucket, the earliest on a tie.
  const most = Math.max(...expected.map(b => b.articles))
  t.equal(out.peak?.period ?? null, most === 0 ? null : expected.find(b => b.articles === most)!.period)
  return expected
}

t.test('daily buckets across the March DST switch and the Eastern/UTC date line', async t => {
  const ctx = await buildApp(t)
  ctx.upstream.body = fixture
  const call = await toolCaller(ctx)
  const from = Date.parse('2024-03-08T05:00Z') // Mar 8 00:00 EST
  const to = Date.parse('2024-03-13T03:59Z') // Mar 12 23:59 EDT
  const res = await call(TOOL, { ticker: 'nvda', timeFrom: '2024-03-08T05:00Z', timeTo: '2024-03-13T03:59Z' })
  t.equal(res.result?.isError, undefined, res.text)
  const out = res.result?.structuredContent
  t.equal(out.ticker, 'NVDA')
  t.same(out.window, { from: '2024-03-08T05:00:00Z', to: '2024-03-13T03:59:00Z' })
  const expected = checkTrend(t, out, from, to, 'day')

  // What the fixture was written to exercise, read from the reference:
  const march10 = expected.find(b => b.period === '2024-03-10')!
  t.equal(Date.parse(march10.end) - Date.parse(march10.start), 23 * HOUR, 'the spring-forward day has 23 hours')
  t.equal(expected.find(b => b.period === '2024-03-09')!.articles, 0, 'an empty bucket')
  t.equal(out.buckets.find((b: { period: string }) => b.period === '2024-03-09').score, null)
  t.equal(expected.filter(b => b.articles === Math.max(...expected.map(x => x.articles))).length, 2, 'two buckets tie for the peak')
  t.equal(out.complete, true)
  t.equal(out.coverageFrom, null)

  const lines = res.text.split('\n')
  t.match(lines[0], /^NVDA sentiment 2024-03-08T05:00:00Z → 2024-03-13T03:59:00Z: (improving|worsening|steady) \([+-]\d\.\d{3}\): first 2 days .* → last 2 days /)
  t.match(lines[0], `Most coverage: ${out.peak.period} (${out.peak.articles} articles).`)
  t.ok(lines.includes('2024-03-09  0'), 'the empty day is listed')

  const params = ctx.upstream.hits[0]!.params
  t.equal(ctx.upstream.hits.length, 1, 'one upstream call')
  t.equal(params.get('tickers'), 'NVDA')
  t.equal(params.get('limit'), '1000')
  t.equal(params.get('sort'), 'LATEST')
  t.equal(params.get('time_from'), referenceStamp(from))
  t.equal(params.get('time_to'), referenceStamp(to))
})

t.test('hourly buckets across the November DST switch: the repeated 01:00 is two buckets', async t => {
  const ctx = await buildApp(t)
  ctx.upstream.body = fixture
  const call = await toolCaller(ctx)
  const from = Date.parse('2024-11-03T04:00Z')
  const to = Date.parse('2024-11-03T08:00Z')
  const res = await call(TOOL, { ticker: 'NVDA', timeFrom: '2024-11-03T04:00Z', timeTo: '2024-11-03T08:00Z' })
  const out = res.result?.structuredContent
  const expected = checkTrend(t, out, from, to, 'hour')
  t.same(expected.map(b => b.period), [
    '2024-11-03T00:00-04:00', '2024-11-03T01:00-04:00', '2024-11-03T01:00-05:00', '2024-11-03T02:00-05:00', '2024-11-03T03:00-05:00'
  ], 'the reference walks the fall-back hour twice')
  t.match(res.text, /first 2 hours .* → last 2 hours /)

  // The same window in days: one 25-hour bucket plus the partial day before (UTC midnight is the evening before in New York).
  const days = await call(TOOL, { ticker: 'NVDA', timeFrom: '2024-11-02', timeTo: '2024-11-05T04:59Z', bucket: 'day' })
  const dayOut = days.result?.structuredContent
  const daily = checkTrend(t, dayOut, Date.parse('2024-11-02T00:00Z'), Date.parse('2024-11-05T04:59Z'), 'day')
  t.equal(daily[0]!.period, '2024-11-01', 'the window starts on the Eastern evening of Nov 1')
  const nov3 = daily.find(b => b.period === '2024-11-03')!
  t.equal(Date.parse(nov3.end) - Date.parse(nov3.start), 25 * HOUR, 'the fall-back day has 25 hours')
})

t.test('one bucket, no article: no change, no peak, said plainly', async t => {
  const ctx = await buildApp(t)
  ctx.upstream.body = fixture
  const call = await toolCaller(ctx)
  const res = await call(TOOL, { ticker: 'NVDA', timeFrom: '2024-06-01T10:00Z', timeTo: '2024-06-01T10:30Z' })
  const out = res.result?.structuredContent
  checkTrend(t, out, Date.parse('2024-06-01T10:00Z'), Date.parse('2024-06-01T10:30Z'), 'hour')
  t.equal(out.buckets.length, 1)
  t.equal(out.change, null)
  t.equal(out.peak, null)
  t.match(res.text, 'no change measurable (one bucket only)')
  t.match(res.text, 'No articles in the window.')

  // Two empty halves.
  const empty = await call(TOOL, { ticker: 'AMD', timeFrom: '2024-06-01T10:00Z', timeTo: '2024-06-01T13:30Z' })
  t.match(empty.text, 'no change measurable (first 2 hours no articles → last 2 hours no articles)')
})

t.test('the trend shares get_news_sentiment\'s upstream call, and narrower windows cost nothing', async t => {
  const ctx = await buildApp(t)
  const call = await toolCaller(ctx)
  t.notOk((await call('get_news_sentiment', { ticker: 'NVDA', timeFrom: '7d' })).result?.isError)
  const trend = await call(TOOL, { ticker: 'NVDA' })
  t.equal(trend.result?.structuredContent.freshness.cached, true, 'default window 7d: the same question')
  t.equal(trend.result?.structuredContent.bucketSize, 'day')
  const day = await call(TOOL, { ticker: 'NVDA', timeFrom: '24h' })
  t.equal(day.result?.structuredContent.freshness.cached, true, 'the last day is cut from the week')
  t.equal(day.result?.structuredContent.bucketSize, 'hour')
  t.equal(ctx.upstream.hits.length, 1, 'one upstream call for all three')
  const other = await call(TOOL, { ticker: 'AMD' })
  t.equal(other.result?.structuredContent.freshness.cached, false, 'another ticker is another question')
  t.equal(ctx.upstream.hits.length, 2)
})

t.test('bad arguments are refused before any upstream call', async t => {
  const ctx = await buildApp(t)
  const call = await toolCaller(ctx)
  const future = new Date(Date.now() + 86_400_000).toISOString()
  const cases: Array<[unknown, RegExp]> = [
    [{}, /ticker: /],
    [{ ticker: ['NVDA', 'AMD'] }, /ticker: /],
    [{ ticker: 'NV DA' }, /ticker: must be a ticker symbol/],
    [{ ticker: 'NVDA', bucket: 'week' }, /bucket: /],
    [{ ticker: 'NVDA', timeFrom: '4d', bucket: 'hour' }, /timeFrom: the window is too long for hourly buckets \(at most 72 hours\)/],
    [{ ticker: 'NVDA', timeFrom: '2024-01-01', timeTo: '2024-06-01' }, /timeFrom: the window is too long for daily buckets \(at most 90 days\)/],
    [{ ticker: 'NVDA', timeFrom: future }, /timeFrom: is in the future/],
    [{ ticker: 'NVDA', timeFrom: '2024-05-02', timeTo: '2024-05-01' }, /timeTo: must be later than timeFrom/]
  ]
  for (const [args, message] of cases) {
    const a = await call(TOOL, args)
    t.equal(a.error?.code, -32602, JSON.stringify(args))
    t.match(a.error?.message, message)
  }
  t.equal(ctx.upstream.hits.length, 0, 'the upstream never asked')
})

t.test('a feed at Alpha Vantage\'s 1,000 limit says from when its buckets are whole', async t => {
  const ctx = await buildApp(t)
  // 1,000 articles a minute apart, newest first, ending 2024-05-20 12:00 EDT.
  const newest = Date.UTC(2024, 4, 20, 16)
  const feed = Array.from({ length: 1000 }, (_, i) => ({
    ...fixture.feed[0],
    title: `full ${i}`,
    time_published: referenceStamp(newest - i * 60_000).replace(/$/, '00'),
    ticker_sentiment: [{ ticker: 'NVDA', relevance_score: '0.5', ticker_sentiment_score: '0.2' }]
  }))
  ctx.upstream.body = { items: '1000', feed }
  const call = await toolCaller(ctx)
  const res = await call(TOOL, { ticker: 'NVDA', timeFrom: '2024-05-19T12:00Z', timeTo: '2024-05-20T16:00Z' })
  const out = res.result?.structuredContent
  t.equal(out.complete, false)
  const oldest = new Date(newest - 999 * 60_000).toISOString().replace('.000Z', 'Z')
  t.equal(out.coverageFrom, oldest)
  t.match(res.text, `Note: Alpha Vantage returned its maximum of 1000 articles; they reach back to ${oldest} only`)
  t.equal(out.whole.articles, 1000)

  const movers = await call('get_news_movers', { timeFrom: '2024-05-19T12:00Z' })
  t.equal(movers.result?.structuredContent.complete, false)
  t.match(movers.text, `they reach back to ${oldest} only`)
})
