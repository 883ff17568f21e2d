import t from 'tap'
import type { Article } from '../../../lib/news/alpha-vantage.js'
import { aggregateFor, labelFor, overallAggregate, relevanceTo, timeSpanOf } from '../../../lib/news/sentiment.js'

function article (over: Partial<Article>): Article {
  return {
    title: 't',
    url: '',
    summary: '',
    source: 's',
    sourceDomain: null,
    publishedAt: null,
    authors: [],
    overallSentimentScore: null,
    overallSentimentLabel: null,
    topics: [],
    tickerSentiment: [],
    ...over
  }
}

t.test('labels by the documented thresholds, at and around each edge', async t => {
  const cases: Array<[number, string]> = [
    [-1, 'Bearish'], [-0.35, 'Bearish'], [-0.3499, 'Somewhat-Bearish'],
    [-0.15, 'Somewhat-Bearish'], [-0.1499, 'Neutral'], [0, 'Neutral'],
    [0.1499, 'Neutral'], [0.15, 'Somewhat-Bullish'], [0.3499, 'Somewhat-Bullish'],
    [0.35, 'Bullish'], [1, 'Bullish']
  ]
  for (const [score, label] of cases) t.equal(labelFor(score), label, String(score))
})

t.test('the relevance-weighted aggregate skips what cannot be weighed', async t => {
  const articles = [
    article({ tickerSentiment: [{ ticker: 'AAPL', relevance: 0.8, score: 0.5, label: 'Neutral' }] }),
    article({ tickerSentiment: [{ ticker: 'AAPL', relevance: 0.2, score: -0.5, label: null }] }),
    article({ tickerSentiment: [{ ticker: 'AAPL', relevance: 0, score: 1, label: null }] }),
    article({ tickerSentiment: [{ ticker: 'AAPL', relevance: null, score: 1, label: null }] }),
    article({ tickerSentiment: [{ ticker: 'AAPL', relevance: 0.5, score: null, label: null }] }),
    article({ tickerSentiment: [{ ticker: 'MSFT', relevance: 1, score: -1, label: null }] })
  ]
  const agg = aggregateFor('AAPL', articles)
  t.equal(agg.score, (0.8 * 0.5 + 0.2 * -0.5) / (0.8 + 0.2))
  t.equal(agg.label, 'Somewhat-Bullish', '0.3')
  t.equal(agg.articles, 2)
  t.same(agg.labelCounts, { Bearish: 1, 'Somewhat-Bearish': 0, Neutral: 0, 'Somewhat-Bullish': 0, Bullish: 1 })

  const none = aggregateFor('TSLA', articles)
  t.same(none, { ticker: 'TSLA', score: null, label: null, articles: 0, labelCounts: { Bearish: 0, 'Somewhat-Bearish': 0, Neutral: 0, 'Somewhat-Bullish': 0, Bullish: 0 } })
})

t.test('the overall aggregate is a plain mean', async t => {
  const agg = overallAggregate([article({ overallSentimentScore: 0.4 }), article({ overallSentimentScore: -0.2 }), article({})])
  t.equal(agg.score, (0.4 - 0.2) / 2)
  t.equal(agg.label, 'Neutral')
  t.equal(agg.articles, 2)
  t.equal(agg.labelCounts.Bullish, 1)
  t.equal(agg.labelCounts['Somewhat-Bearish'], 1)
  t.same(overallAggregate([]), { score: null, label: null, articles: 0, labelCounts: { Bearish: 0, 'Somewhat-Bearish': 0, Neutral: 0, 'Somewhat-Bullish': 0, Bullish: 0 } })
})

t.test('the time span ignores unknown times', async t => {
  t.same(timeSpanOf([]), { from: null, to: null })
  t.same(timeSpanOf([
    article({ publishedAt: '2024-05-01T10:00:00Z' }),
    article({ publishedAt: null }),
    article({ publishedAt: '2023-12-31T23:59:00Z' }),
    article({ publishedAt: '2024-07-01T00:00:00Z' })
  ]), { from: '2023-12-31T23:59:00Z', to: '2024-07-01T00:00:00Z' })
})

t.test('relevance to any asked ticker: the best one', async t => {
  const a = article({
    tickerSentiment: [
      { ticker: 'AAPL', relevance: 0.3, score: 0, label: null },
      { ticker: 'MSFT', relevance: 0.6, score: 0, label: null },
      { ticker: 'GOOG', relevance: null, score: 0, label: null },
      { ticker: 'TSLA', relevance: 0.9, score: 0, label: null }
    ]
  })
  t.equal(relevanceTo(['AAPL', 'MSFT', 'GOOG'], a), 0.6)
  t.equal(relevanceTo(['GOOG'], a), 0)
  t.equal(relevanceTo(['NVDA'], a), 0)
})
