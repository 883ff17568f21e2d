import t from 'tap'
import type { Article } from '../../../lib/news/alpha-vantage.js'
import { planCalls, rankComparison, type ComparisonRow } from '../../../lib/news/compare.js'
import { changeText, sentimentTrend } from '../../../lib/news/trend.js'

function row (ticker: string, score: number | null, articles: number): ComparisonRow {
  return { ticker, score, articles, label: null, labelCounts: { Bearish: 0, 'Somewhat-Bearish': 0, Neutral: 0, 'Somewhat-Bullish': 0, Bullish: 0 }, change: null, direction: null, timeSpan: { from: null, to: null } }
}

t.test('ranked by score, then articles, then symbol; unscored last', async t => {
  const ranked = rankComparison([row('MSFT', 0.2, 3), row('NONE', null, 0), row('AAPL', 0.2, 3), row('TSM', 0.2, 9), row('NVDA', 0.5, 1)])
  t.same(ranked.map(r => r.ticker), ['NVDA', 'TSM', 'AAPL', 'MSFT', 'NONE'])
})

t.test('the cost, and when it is refused', async t => {
  const reset = '2026-12-03T00:00:00.000Z'
  t.same(planCalls(['A', 'B'], [false, false], 5, reset), { needed: 2, cached: [], remaining: 5, refusal: null })
  t.equal(planCalls(['A', 'B'], [true, true], 0, reset).refusal, null, 'all cached: free even with nothing left')
  t.equal(planCalls(['A', 'B'], [false, false], 2, reset).refusal,
    `Comparing A, B needs 2 Alpha Vantage calls (one per ticker), and only 2 are left today: that would exhaust the day's quota for everyone. Compare fewer tickers (at most 1 not cached), or ask again after ${reset}.`)
  t.equal(planCalls(['A', 'B'], [false, false], 0, reset).refusal,
    `Comparing A, B needs 2 Alpha Vantage calls (one per ticker), and none is left today; the quota starts again at ${reset}. Tickers asked about recently are answered from the cache.`)
})

function article (at: string, score: number): Article {
  return { title: at, url: '', summary: '', source: 's', sourceDomain: null, publishedAt: at, authors: [], overallSentimentScore: null, overallSentimentLabel: null, topics: [], tickerSentiment: [{ ticker: 'X', relevance: 1, score, label: null }] }
}

t.test('steady below 0.05 either way, worsening from -0.05, one bucket per half reads singular', async t => {
  const from = Date.parse('2024-05-20T10:00Z')
  const to = Date.parse('2024-05-20T11:30Z') // two hourly buckets
  const trend = (a: number, b: number): ReturnType<typeof sentimentTrend> =>
    sentimentTrend([article('2024-05-20T10:10:00Z', a), article('2024-05-20T11:10:00Z', b)], 'X', from, to, 'hour')
  t.equal(trend(0.2, 0.249).direction, 'steady')
  t.equal(trend(0.2, 0.151).direction, 'steady')
  t.equal(trend(0.2, 0.1).direction, 'worsening')
  t.equal(trend(0.1, 0.2).direction, 'improving')
  t.match(changeText(trend(0.2, 0.1)), /^worsening \(-0\.100\): first 1 hour Somewhat-Bullish 0\.200 over 1 article → last 1 hour Neutral 0\.100 over 1 article$/)
})
