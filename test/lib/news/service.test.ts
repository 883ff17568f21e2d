import t from 'tap'
import type { FastifyBaseLogger } from 'fastify'
import { AlphaVantageError, type NewsFeed, type NewsQuery } from '../../../lib/news/alpha-vantage.js'
import { MemoryResponseCache } from '../../../lib/news/cache.js'
import { MemoryQuotaStore } from '../../../lib/news/quota.js'
import { NewsService, cacheKey, type NewsServiceOptions } from '../../../lib/news/service.js'

const DAY = 86_400_000

function feed (bytes = 100): NewsFeed {
  return { articles: [], dropped: 0, bytes }
}

/** A client whose answers the test scripts: a feed, an error, or a promise the test settles. */
class FakeClient {
  calls: NewsQuery[] = []
  answers: Array<NewsFeed | Error | Promise<NewsFeed>> = []
  fallback: NewsFeed | Error = feed()

  async newsSentiment (query: NewsQuery): Promise<NewsFeed> {
    this.calls.push(query)
    const next = this.answers.shift() ?? this.fallback
    if (next instanceof Error) throw next
    return await next
  }
}

interface Harness {
  service: NewsService
  client: FakeClient
  clock: { now: number }
  warnings: unknown[]
}

function harness (opts: Partial<NewsServiceOptions> = {}): Harness {
  const clock = { now: Date.UTC(2024, 4, 20, 12) }
  const now = (): number => clock.now
  const client = new FakeClient()
  const warnings: unknown[] = []
  const service = new NewsService({
    client,
    cache: new MemoryResponseCache<NewsFeed>({ maxEntries: 10, maxBytes: 10_000, retentionMs: DAY, now }),
    ttlMs: 60_000,
    dailyLimit: 25,
    retries: 2,
    retryBaseMs: 0,
    circuitThreshold: 3,
    circuitCooldownMs: 30_000,
    log: { warn: (...args: unknown[]) => { warnings.push(args) } } as unknown as FastifyBaseLogger,
    now,
    ...opts
  })
  return { service, client, clock, warnings }
}

const unavailable = (): AlphaVantageError => new AlphaVantageError('unavailable', 'Alpha Vantage is unavailable (HTTP 503); try again shortly.', true)
const AAPL: NewsQuery = { tickers: ['AAPL'], sort: 'LATEST', limit: 50 }

t.test('the cache key is the question, however it is spelled', async t => {
  t.equal(cacheKey({ tickers: ['msft', 'AAPL'], topics: ['ipo', 'earnings'] }), cacheKey({ tickers: ['AAPL', 'MSFT'], topics: ['earnings', 'ipo'], sort: 'LATEST', limit: 50 }))
  t.not(cacheKey({ tickers: ['AAPL'] }), cacheKey({ tickers: ['AAPL'], timeFrom: '20240101T0000' }))
  t.not(cacheKey({ tickers: ['AAPL'] }), cacheKey({ tickers: ['AAPL'], timeTo: '20240101T0000' }))
  t.not(cacheKey({ tickers: ['AAPL'] }), cacheKey({ tickers: ['AAPL'], sort: 'EARLIEST' }))
  t.not(cacheKey({ topics: ['ipo'] }), cacheKey({ tickers: ['ipo'] }))
  t.equal(cacheKey({ tickers: ['aapl'], topics: ['ipo'] }), cacheKey({ tickers: ['AAPL'], topics: ['ipo'] }), 'one ticker: case does not matter either')
})

t.test('fresh for the TTL, then asked again', async t => {
  const { service, client, clock } = harness()
  const first = await service.query(AAPL)
  t.equal(first.cached, false)
  t.equal(first.fetchedAt, new Date(clock.now).toISOString())
  clock.now += 59_999
  const second = await service.query({ ...AAPL, tickers: ['aapl'] })
  t.equal(second.cached, true)
  t.equal(second.ageSeconds, 60)
  t.equal(client.calls.length, 1)
  clock.now += 1
  const third = await service.query(AAPL)
  t.equal(third.cached, false)
  t.equal(client.calls.length, 2)
  t.equal(service.used, 2)
})

t.test('a cache hit never reads the caller\'s signal (a tool context makes it on demand)', async t => {
  const { service } = harness()
  let reads = 0
  const opts = { get signal () { reads++; return new AbortController().signal } }
  await service.query(AAPL, opts)
  t.equal(reads, 1, 'a miss reads it, to stop waiting on cancel')
  await service.query(AAPL, opts)
  await service.query(AAPL, opts)
  t.equal(reads, 1, 'hits do not')
})

t.test('the daily quota: near, spent, reset at midnight UTC', async t => {
  const { service, client, clock } = harness({ dailyLimit: 5 })
  clock.now = Date.UTC(2024, 4, 20, 23, 59)
  const states = []
  for (let i = 0; i < 5; i++) states.push((await service.query({ tickers: [`T${i}`] })).quota.state)
  t.same(states, ['ok', 'ok', 'ok', 'near', 'spent'], 'near from 80 % (4 of 5)')
  const q = service.quota()
  t.same(q, { state: 'spent', used: 5, limit: 5, remaining: 0, resetsAt: '2024-05-21T00:00:00.000Z' })
  await t.rejects(service.query({ tickers: ['NEW'] }), { kind: 'daily_limit', message: /used its 5 Alpha Vantage requests for today \(daily limit\); new questions can be answered after 2024-05-21T00:00:00\.000Z/ })
  t.equal(client.calls.length, 5)
  t.equal((await service.query({ tickers: ['T0'] })).cached, true, 'a cached question still answers')

  clock.now = Date.UTC(2024, 4, 21, 0, 0)
  t.equal(service.used, 0, 'a new UTC day')
  t.same(service.quota(), { state: 'ok', used: 0, limit: 5, remaining: 5, resetsAt: '2024-05-22T00:00:00.000Z' })
  t.equal((await service.query({ tickers: ['NEW'] })).cached, false)
  t.equal(client.calls.length, 6)
})

t.test('small limits still warn before they are spent', async t => {
  for (const [limit, nearAt] of [[2, 1], [3, 2], [4, 3], [25, 20]] as const) {
    const { service } = harness({ dailyLimit: limit })
    const states = []
    for (let i = 0; i < limit; i++) states.push((await service.query({ tickers: [`T${i}`] })).quota.state)
    t.equal(states.indexOf('near'), nearAt - 1, `limit ${limit}: near after ${nearAt}`)
    t.equal(states.at(-1), 'spent')
  }
  const { service } = harness({ dailyLimit: 1 })
  t.equal(service.quota().state, 'ok', 'limit 1: nothing to warn about before the one call')
})

t.test('an upstream daily-limit answer holds new calls back, then probes again after the interval (not at midnight)', async t => {
  const { service, client, clock } = harness({ dailyLimitProbeMs: 30 * 60_000 })
  clock.now = Date.UTC(2024, 4, 20, 12, 0, 0)
  client.answers = [new AlphaVantageError('daily_limit', 'daily limit')]
  await t.rejects(service.query(AAPL), { name: 'AlphaVantageError', kind: 'daily_limit', message: /daily limit for this server's API key is reached; the next try is at 12:30:00 UTC \(2024-05-20T12:30:00\.000Z\)/ })
  t.equal(service.quota().state, 'spent', 'results say so')
  t.equal(await service.quotaRemaining(), 0)
  clock.now += 29 * 60_000
  await t.rejects(service.query({ tickers: ['MSFT'] }), { kind: 'daily_limit', message: /next try is at 12:30:00 UTC/ })
  t.equal(client.calls.length, 1, 'no call while held back')

  clock.now += 60_000
  client.answers = [new AlphaVantageError('daily_limit', 'daily limit')]
  await t.rejects(service.query({ tickers: ['MSFT'] }), { message: /next try is at 13:00:00 UTC/ }, 'the probe: still spent, held back again')
  t.equal(client.calls.length, 2)

  clock.now += 30 * 60_000
  t.equal((await service.query({ tickers: ['MSFT'] })).cached, false, 'the next probe gets an answer: calls resume')
  t.equal(service.quota().state, 'ok')
  t.equal(client.calls.length, 3)
})

t.test('concurrent identical questions share one upstream call', async t => {
  const { service, client } = harness()
  let release!: (f: NewsFeed) => void
  client.answers = [new Promise<NewsFeed>(resolve => { release = resolve })]
  const answers = Promise.all([service.query(AAPL), service.query({ ...AAPL }), service.query({ tickers: ['aapl'] })])
  await new Promise(resolve => setImmediate(resolve))
  const shared = feed(123)
  release(shared)
  const got = await answers
  t.equal(client.calls.length, 1)
  for (const a of got) t.equal(a.feed, shared)
  t.equal(service.used, 1)
  // The call is over: the next question after the TTL is a new call.
  t.equal((await service.query({ tickers: ['MSFT'] })).cached, false)
  t.equal(client.calls.length, 2)
})

t.test('one waiter cancelling does not cancel the shared call', async t => {
  const { service, client } = harness()
  let release!: (f: NewsFeed) => void
  client.answers = [new Promise<NewsFeed>(resolve => { release = resolve })]
  const controller = new AbortController()
  const cancelled = service.query(AAPL, { signal: controller.signal })
  const waiting = service.query(AAPL, { signal: new AbortController().signal })
  await new Promise(resolve => setImmediate(resolve))
  controller.abort()
  await t.rejects(cancelled, { kind: 'unavailable', message: 'The request was cancelled.' })
  release(feed(7))
  const answer = await waiting
  t.equal(answer.feed.bytes, 7, 'the other waiter got the answer')
  t.equal(client.calls.length, 1)
  t.equal((await service.query(AAPL)).cached, true, 'and it was cached')

  const aborted = new AbortController()
  aborted.abort()
  await t.rejects(service.query({ tickers: ['MSFT'] }, { signal: aborted.signal }), { message: 'The request was cancelled.' })
})

t.test('a cancelled caller gets no stale answer', async t => {
  const { service, client, clock } = harness()
  await service.query(AAPL)
  clock.now += 120_000
  const controller = new AbortController()
  client.answers = [new Promise<NewsFeed>(() => {})]
  const pending = service.query(AAPL, { signal: controller.signal })
  await new Promise(resolve => setImmediate(resolve))
  controller.abort()
  await t.rejects(pending, { message: 'The request was cancelled.' })
})

t.test('retries: only timeouts and 5xx, with the quota in mind', async t => {
  const a = harness()
  a.client.answers = [unavailable(), unavailable()]
  t.equal((await a.service.query(AAPL)).cached, false, 'two failures, then an answer')
  t.equal(a.client.calls.length, 3)
  t.equal(a.service.used, 3, 'each attempt counts against the quota')

  const b = harness()
  b.client.fallback = unavailable()
  await t.rejects(b.service.query(AAPL), { name: 'AlphaVantageError', kind: 'unavailable' })
  t.equal(b.client.calls.length, 3, '1 + retries')

  for (const kind of ['rate_limited', 'invalid_request', 'premium_only', 'demo_key', 'bad_response'] as const) {
    const c = harness()
    c.client.fallback = new AlphaVantageError(kind, kind)
    await t.rejects(c.service.query(AAPL), { name: 'AlphaVantageError', kind })
    t.equal(c.client.calls.length, 1, `${kind}: no retry`)
  }

  const d = harness({ dailyLimit: 2, retries: 5 })
  d.client.fallback = unavailable()
  await t.rejects(d.service.query(AAPL), { name: 'AlphaVantageError', kind: 'unavailable' })
  t.equal(d.client.calls.length, 2, 'no retry past the quota')

  const e = harness()
  e.client.fallback = new TypeError('a bug')
  await t.rejects(e.service.query(AAPL), TypeError, 'anything else is not retried or dressed up')
  t.equal(e.client.calls.length, 1)
})

t.test('stale-if-error', async t => {
  const { service, client, clock } = harness({ retries: 0 })
  const good = await service.query(AAPL)
  clock.now += 120_000
  client.answers = [unavailable()]
  const stale = await service.query(AAPL)
  t.equal(stale.stale, true)
  t.equal(stale.cached, true)
  t.equal(stale.feed, good.feed)
  t.equal(stale.ageSeconds, 120)
  t.equal(stale.staleReason, unavailable().message)

  client.answers = [new AlphaVantageError('invalid_request', 'bad ticker')]
  await t.rejects(service.query(AAPL), { name: 'AlphaVantageError', kind: 'invalid_request' }, 'a wrong question is not answered from the past')
})

t.test('the circuit: opens after the threshold, serves stale, reopens after the cooldown', async t => {
  const { service, client, clock, warnings } = harness({ retries: 0, circuitThreshold: 2 })
  await service.query({ tickers: ['OLD'] })
  client.fallback = unavailable()
  clock.now += 120_000
  await service.query({ tickers: ['OLD'] }) // stale, but a failure all the same
  t.equal(service.circuitOpen, false)
  client.answers = [new AlphaVantageError('rate_limited', 'slow down')]
  await t.rejects(service.query(AAPL), { name: 'AlphaVantageError', kind: 'rate_limited' })
  t.equal(service.circuitOpen, false, 'a "no" from a working upstream is not a failure')
  await t.rejects(service.query(AAPL), { name: 'AlphaVantageError', kind: 'unavailable' })
  t.equal(service.circuitOpen, true)
  t.equal(warnings.length, 1, 'the opening is logged')
  const calls = client.calls.length

  clock.now += 10_000
  await t.rejects(service.query(AAPL), { kind: 'unavailable', message: /stops calling it for 20 s/ })
  const stale = await service.query({ tickers: ['OLD'] })
  t.equal(stale.stale, true)
  t.match(stale.staleReason, /stops calling it for 20 s/)
  t.equal(client.calls.length, calls, 'the open circuit makes no calls')

  clock.now += 20_000
  t.equal(service.circuitOpen, false)
  client.fallback = feed()
  t.equal((await service.query(AAPL)).cached, false, 'after the cooldown the upstream is asked again')
  t.equal(client.calls.length, calls + 1)
})

t.test('defaults: the wall clock, an 80 % warning, no logger needed', async t => {
  const client = new FakeClient()
  const service = new NewsService({
    client,
    cache: new MemoryResponseCache<NewsFeed>({ maxEntries: 10, maxBytes: 10_000, retentionMs: DAY }),
    ttlMs: 60_000,
    dailyLimit: 5,
    retries: 0,
    retryBaseMs: 0,
    circuitThreshold: 1,
    circuitCooldownMs: 1000
  })
  const answer = await service.query(AAPL)
  t.ok(Math.abs(Date.parse(answer.fetchedAt) - Date.now()) < 5000)
  client.fallback = unavailable()
  await t.rejects(service.query({ tickers: ['MSFT'] }))
  t.equal(service.circuitOpen, true, 'opened without a logger to tell')
})

t.test('the circuit counts consecutive failures only: fail, succeed, fail leaves it closed at threshold 2 (issue 8.11)', async t => {
  const { service, client } = harness({ retries: 0, circuitThreshold: 2 })
  client.answers = [unavailable(), feed(), unavailable()]
  await t.rejects(service.query({ tickers: ['A'] }), { name: 'AlphaVantageError', kind: 'unavailable' })
  await service.query({ tickers: ['B'] })
  await t.rejects(service.query({ tickers: ['C'] }), { name: 'AlphaVantageError', kind: 'unavailable' })
  t.equal(service.circuitOpen, false, 'a success in between resets the count')
  client.answers = [unavailable()]
  await t.rejects(service.query({ tickers: ['D'] }), { name: 'AlphaVantageError', kind: 'unavailable' })
  t.equal(service.circuitOpen, true, 'two in a row open it')
})

t.test('the subject\'s share: only the caller that starts a call is charged; a refusal is never another caller\'s (issue 8.4)', async t => {
  const { service, client } = harness({ dailyLimit: 10, subjectShare: 0.2 })
  t.equal(service.subjectLimit, 2)
  const alice = { auth: { subject: 'alice' } }
  const bob = { auth: { subject: 'bob' } }
  await service.query({ tickers: ['A1'] }, alice)
  await service.query({ tickers: ['A2'] }, alice)
  await t.rejects(service.query({ tickers: ['A3'] }, alice), { kind: 'daily_limit', subjectShare: true, message: /used your share/ })
  t.equal(await service.quotaRemaining('alice'), 0)

  // Bob starts a call; alice joins it while it runs: free for her.
  let release!: (f: NewsFeed) => void
  client.answers = [new Promise<NewsFeed>(resolve => { release = resolve })]
  const bobs = service.query({ tickers: ['B1'] }, bob)
  const alices = service.query({ tickers: ['B1'] }, alice)
  await new Promise(resolve => setImmediate(resolve))
  release(feed(5))
  t.equal((await alices).feed.bytes, 5, 'alice joined bob\'s call')
  await bobs
  t.equal(await service.quotaRemaining('bob'), 1)

  // Alice starts a call she has no share for; bob joins it: he gets an answer, not her refusal.
  const refused = service.query({ tickers: ['C1'] }, alice)
  const joined = service.query({ tickers: ['C1'] }, bob)
  await t.rejects(refused, { name: 'AlphaVantageError', subjectShare: true })
  t.equal((await joined).cached, false, 'bob asked in his own name')
  t.equal(await service.quotaRemaining('bob'), 0)
  t.equal(await service.quotaRemaining(), 10 - 4)
  t.equal(client.calls.length, 4)
})

t.test('the pace: calls beyond the per-minute rate queue for the next minute, or are refused with its time (issue 13.6)', async t => {
  const slept: number[] = []
  const h = harness({ callsPerMinute: 2, paceMaxWaitMs: 65_000, sleep: async ms => { slept.push(ms); h.clock.now += ms } })
  h.clock.now = Date.UTC(2024, 4, 20, 12, 0, 10)
  await h.service.query({ tickers: ['A'] })
  await h.service.query({ tickers: ['B'] })
  t.same(slept, [], 'two calls in the minute: no wait')
  const third = await h.service.query({ tickers: ['C'] })
  t.equal(third.cached, false)
  t.equal(slept.length, 1, 'the third queued')
  t.ok(slept[0]! >= 50_000 && slept[0]! < 50_250, `until the next minute (${slept[0]} ms)`)
  t.equal(h.client.calls.length, 3)

  const impatient = harness({ callsPerMinute: 1, paceMaxWaitMs: 10_000, sleep: async () => { throw new Error('must not wait') } })
  impatient.clock.now = Date.UTC(2024, 4, 20, 12, 0, 10)
  await impatient.service.query({ tickers: ['A'] })
  await t.rejects(impatient.service.query({ tickers: ['B'] }), { kind: 'rate_limited', message: /rate limit \(1 requests a minute for this server\) is reached; the next try is at 12:01:00 UTC/ })
  t.equal(impatient.client.calls.length, 1)
})

t.test('an upstream rate-limit answer names the next minute', async t => {
  const { service, client, clock } = harness()
  clock.now = Date.UTC(2024, 4, 20, 12, 0, 10)
  client.answers = [new AlphaVantageError('rate_limited', 'slow down')]
  await t.rejects(service.query(AAPL), { kind: 'rate_limited', message: /rate limit for this server's API key is reached; the next try is at 12:01:00 UTC/ })
})

t.test('a daily-limit hold set by another replica stops this one\'s calls too (issue 9.4)', async t => {
  const store = new MemoryQuotaStore()
  const a = harness({ quotaStore: store })
  const b = harness({ quotaStore: store })
  a.client.answers = [new AlphaVantageError('daily_limit', 'daily limit')]
  await t.rejects(a.service.query(AAPL), { name: 'AlphaVantageError', kind: 'daily_limit' })
  await t.rejects(b.service.query({ tickers: ['MSFT'] }), { name: 'AlphaVantageError', kind: 'daily_limit', message: /next try is at 12:30:00 UTC/ })
  t.equal(b.client.calls.length, 0, 'the other replica did not call')
})

t.test('onStored: told of each fresh answer fetched and stored here, not of cache hits; a failing listener breaks nothing', async t => {
  const errors: unknown[] = []
  const { service, client } = harness({ log: { warn: () => {}, error: (...args: unknown[]) => { errors.push(args) } } as unknown as FastifyBaseLogger })
  const stored: Array<[NewsQuery, string]> = []
  const stop = service.onStored((query, key) => { stored.push([query, key]) })
  service.onStored(() => { throw new Error('listener bug') })
  const first = await service.query(AAPL)
  await service.query(AAPL)
  t.same(stored, [[AAPL, cacheKey(AAPL)]], 'once: the second answer came from the cache')
  t.equal(first.cached, false, 'the failing listener did not fail the answer')
  t.equal(errors.length, 1)
  stop()
  stop()
  await service.query({ ...AAPL, tickers: ['MSFT'] })
  t.equal(stored.length, 1, 'stopped')
  t.equal(client.calls.length, 2)
})

t.test('a retry is told to the caller\'s MCP log', async t => {
  const { service, client } = harness()
  client.answers = [unavailable(), feed()]
  const told: unknown[] = []
  await service.query(AAPL, { mcpLog: { warning: (data, logger) => { told.push([data, logger]) } } })
  t.same(told, [[{ message: 'Alpha Vantage failed (Alpha Vantage is unavailable (HTTP 503); try again shortly.); retrying (attempt 2 of 3)' }, 'news']])
})
