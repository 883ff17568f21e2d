import t from 'tap'
import { NewsResponder } from '../../../lib/news/responder.js'
import { AlphaVantageError, type NewsFeed } from '../../../lib/news/alpha-vantage.js'
import type { NewsAnswer, NewsService } from '../../../lib/news/service.js'
import { ToolError } from '../../../lib/mcp/tools.js'

function answerFor (feed: NewsFeed, over: Partial<NewsAnswer> = {}): NewsAnswer {
  return {
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

t.test('the view is built once per feed and key; the result is reused while freshness and quota are unchanged', async t => {
  const feed: NewsFeed = { articles: [], dropped: 0, bytes: 10 }
  let next = answerFor(feed)
  const news = { query: async () => next } as unknown as NewsService
  const responder = new NewsResponder<S>(news)
  let builds = 0
  const build = (): { fields: { n: number }, lead: string, body: string } => { builds++; return { fields: { n: 42 }, lead: 'lead line', body: 'body' } }
  const signal = { signal: new AbortController().signal }

  const first = await responder.respond({}, 'k', signal, build)
  const second = await responder.respond({}, 'k', signal, build)
  t.equal(second, first, 'the same result object: its serialization can be reused')
  t.equal(builds, 1)
  t.equal((first.content[0] as { text: string }).text, 'lead line\nbody')
  t.match(first.structuredContent, { n: 42, freshness: { ageSeconds: 3, cached: true, stale: false }, quota: { used: 1 } })

  next = answerFor(feed, { ageSeconds: 4 })
  const older = await responder.respond({}, 'k', signal, build)
  t.not(older, first, 'a new age makes a new result')
  t.equal(builds, 1, 'but not a new view')
  t.equal((older.structuredContent.freshness as { ageSeconds: number }).ageSeconds, 4)

  next = answerFor(feed, { ageSeconds: 4, quota: { state: 'near', used: 20, limit: 25, remaining: 5, resetsAt: '2024-07-13T00:00:00.000Z' } })
  const near = await responder.respond({}, 'k', signal, build)
  t.match((near.content[0] as { text: string }).text, /^lead line\nNote: 20 of 25 Alpha Vantage requests used today/, 'notices sit between the lead and the body')

  await responder.respond({}, 'other', signal, build)
  t.equal(builds, 2, 'another view key builds its own view')
  await responder.respond({}, 'k', signal, build)
  next = answerFor({ articles: [], dropped: 0, bytes: 10 })
  await responder.respond({}, 'k', signal, build)
  t.equal(builds, 3, 'a new feed (a fresh upstream answer) builds a new view')
})

t.test('upstream errors become tool errors; others pass through', async t => {
  const failing = (err: Error): NewsService => ({ query: async () => { throw err } }) as unknown as NewsService
  const signal = { signal: new AbortController().signal }
  const build = (): { fields: { n: number }, lead: string, body: string } => ({ fields: { n: 1 }, lead: '', body: '' })
  await t.rejects(new NewsResponder<S>(failing(new AlphaVantageError('rate_limited', 'slow down'))).respond({}, 'k', signal, build), new ToolError('slow down'))
  const boom = new TypeError('bug')
  await t.rejects(new NewsResponder<S>(failing(boom)).respond({}, 'k', signal, build), boom)
})
