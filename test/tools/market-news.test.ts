import t from 'tap'
import { API_KEY, buildApp } from '../helpers/build-app.js'
import { referenceIso } from '../helpers/eastern-reference.js'
import { expectedOverallAggregate, expectedTimeSpan, fixtureArticles, toolCaller } from '../helpers/news-tools.js'

const TOOL = 'get_market_news'

/** How relevant a raw fixture article is to the topic codes, by its display names, matched here by hand. */
const DISPLAY_NAMES: Record<string, string> = {
  economy_monetary: 'Economy - Monetary',
  life_sciences: 'Life Sciences',
  technology: 'Technology',
  earnings: 'Earnings'
}

function expectedRelevance (codes: string[], article: Record<string, any>): number {
  let sum = 0
  for (const t of article.topics ?? []) {
    if (codes.some(code => DISPLAY_NAMES[code] === t.topic)) sum += Number(t.relevance_score)
  }
  return sum
}

t.test('topics: the mean overall sentiment and the most relevant articles', async t => {
  const ctx = await buildApp(t)
  const call = await toolCaller(ctx)

  const res = await call(TOOL, { topics: ['technology'], limit: 50 })
  t.equal(res.result?.isError, undefined)
  const out = res.result?.structuredContent
  t.same(out.topics, ['technology'])
  t.equal(ctx.upstream.hits[0]!.params.get('topics'), 'technology')
  t.equal(ctx.upstream.hits[0]!.params.get('tickers'), null)
  t.equal(ctx.upstream.hits[0]!.params.get('limit'), '1000')

  const expected = expectedOverallAggregate()
  t.ok(Math.abs(out.aggregate.score - (expected.score as number)) < 1e-12, `mean ${out.aggregate.score} ≈ ${expected.score}`)
  t.equal(out.aggregate.label, expected.label)
  t.equal(out.aggregate.articles, expected.articles)
  t.same(out.aggregate.labelCounts, expected.labelCounts)
  t.same(out.timeSpan, expectedTimeSpan())
  t.equal(out.articlesConsidered, fixtureArticles().length)
  t.ok(res.text.startsWith(`technology: ${expected.label} (mean overall score ${(expected.score as number).toFixed(3)} over ${expected.articles} articles`), res.text.split('\n')[0])

  const relevance = fixtureArticles().map(a => ({ title: a.title as string, relevance: expectedRelevance(['technology'], a) }))
  const order = [...relevance].sort((a, b) => b.relevance - a.relevance)
  t.same(out.articles.map((a: { title: string }) => a.title), order.map(a => a.title), 'most relevant to the topic first, ties in feed order')
  t.same(out.articles.map((a: { topicRelevance: number }) => a.topicRelevance), order.map(a => a.relevance))
  for (const a of out.articles) {
    t.same(a.tickerSentiment, [], 'no ticker entries in topic news')
    t.equal(a.publishedAt, referenceIso(fixtureArticles().find(r => r.title === a.title)!.time_published))
  }
  t.notMatch(res.res.body, API_KEY)
})

t.test('display names match their topic codes', async t => {
  const ctx = await buildApp(t)
  const call = await toolCaller(ctx)
  for (const codes of [['economy_monetary'], ['life_sciences'], ['earnings', 'technology']]) {
    const res = await call(TOOL, { topics: codes, limit: 1 })
    const top = res.result?.structuredContent.articles[0]
    const best = Math.max(...fixtureArticles().map(a => expectedRelevance(codes, a)))
    t.ok(best > 0, `the fixture has an article on ${codes.join(', ')}`)
    t.ok(Math.abs(top.topicRelevance - best) < 1e-6, `${codes.join(', ')}: the article naming it comes first (${top.topicRelevance})`)
    t.equal(ctx.upstream.hits.at(-1)!.params.get('topics'), codes.join(','))
  }
  t.equal(ctx.upstream.hits.length, 3)
})

t.test('invalid arguments are refused before any upstream call', async t => {
  const ctx = await buildApp(t)
  const call = await toolCaller(ctx)
  const cases: Array<[unknown, RegExp]> = [
    [{}, /topics: /],
    [{ topics: [] }, /topics: .*1/],
    [{ topics: ['gossip'] }, /topics\.0: /],
    [{ topics: ['technology'], timeFrom: '2024-05-02', timeTo: '2024-05-01' }, /timeTo: must be later than timeFrom/],
    [{ topics: ['technology'], limit: 51 }, /limit: /]
  ]
  for (const [args, message] of cases) {
    const res = await call(TOOL, args)
    t.equal(res.error?.code, -32602)
    t.match(res.error?.message, message)
  }
  t.equal(ctx.upstream.hits.length, 0)
})

t.test('an upstream failure is an isError result; an empty feed says so', async t => {
  const ctx = await buildApp(t, { ALPHA_VANTAGE_RETRIES: '0' })
  const call = await toolCaller(ctx)
  ctx.upstream.mode = 'note'
  const failed = await call(TOOL, { topics: ['ipo'] })
  t.equal(failed.result?.isError, true)
  t.match(failed.text, 'rate limit')
  t.notMatch(failed.res.body, API_KEY)

  ctx.upstream.mode = 'empty'
  const empty = await call(TOOL, { topics: ['ipo'], timeFrom: '24h', sort: 'EARLIEST' })
  t.equal(empty.result?.isError, undefined)
  t.equal(empty.result?.structuredContent.aggregate.score, null)
  t.same(empty.result?.structuredContent.timeSpan, { from: null, to: null })
  t.match(empty.text, /^ipo: no scored articles\n/)
  t.match(empty.text, 'No news articles found for these topics')
  t.equal(ctx.upstream.hits.at(-1)!.params.get('sort'), 'EARLIEST')
  t.match(ctx.upstream.hits.at(-1)!.params.get('time_from'), /^\d{8}T\d{4}$/)
})

t.test('articles with little in them still read well', async t => {
  const ctx = await buildApp(t)
  ctx.upstream.body = {
    feed: [
      { title: 'Bare', topics: [{ topic: 'Technology' }] },
      { title: 'Scored', url: 'https://wire.test/1', summary: 'Short.', time_published: '20240115T091500', overall_sentiment_score: '0.4', topics: [{ topic: 'Technology', relevance_score: '0.3' }] }
    ]
  }
  const call = await toolCaller(ctx)
  const res = await call(TOOL, { topics: ['technology'] })
  const out = res.result?.structuredContent
  t.same(out.articles.map((a: { title: string }) => a.title), ['Scored', 'Bare'], 'a topic without a relevance counts 0')
  t.same(out.articles[1].overallSentiment, { score: null, label: null })
  t.equal(out.aggregate.articles, 1, 'only the scored article counts')
  const lines = res.text.split('\n')
  const bare = lines.indexOf('2. Bare (unknown source, time unknown)')
  t.ok(bare > 0, 'a header with what is unknown said so')
  t.equal(lines[bare + 1], '   overall n/a n/a')
  t.equal(lines.length, bare + 2, 'no empty summary or URL lines')
  t.same(lines.slice(bare - 4, bare), ['1. Scored (unknown source, 2024-01-15T14:15:00Z)', '   overall Bullish 0.400', '   Short.', '   https://wire.test/1'])
})
