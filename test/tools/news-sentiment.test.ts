import t, { type Test } from 'tap'
import { NewsService } from '../../lib/news/service.js'
import { API_KEY, MCP_HEADERS, buildApp, openSession, type TestContext } from '../helpers/build-app.js'
import { newsFixture, type UpstreamMode } from '../helpers/fake-alpha-vantage.js'
import { referenceIso, referenceStamp } from '../helpers/eastern-reference.js'
import {
  expectedTickerAggregate, expectedTimeSpan, fixtureArticles, rawTickerEntry, referenceLabel, toolCaller, type ToolAnswer
} from '../helpers/news-tools.js'

const TOOL = 'get_news_sentiment'

/** Nothing secret left the server: no result and no log line carries the API key, and the upstream never saw the bearer token. */
function assertNoSecrets (t: Test, ctx: TestContext, answers: ToolAnswer[]): void {
  for (const a of answers) t.notMatch(a.res.body, API_KEY, 'no result carries the API key')
  t.notOk(ctx.logs.some(line => line.includes(API_KEY)), 'no log line carries the API key')
  for (const hit of ctx.upstream.hits) {
    t.equal(hit.params.get('apikey'), API_KEY, 'the upstream got the API key as apikey')
    t.equal(hit.headers.authorization, undefined, 'no Authorization header upstream')
    t.notOk(JSON.stringify(hit.headers).includes(ctx.token) || hit.params.toString().includes(ctx.token), 'the bearer token never goes upstream')
  }
}

t.test('the aggregate and the articles, checked against the fixture', async t => {
  const ctx = await buildApp(t)
  const call = await toolCaller(ctx)

  const first = await call(TOOL, { ticker: 'aapl', limit: 3 })
  t.equal(first.result?.isError, undefined)
  const out = first.result?.structuredContent
  t.same(out.tickers, ['AAPL'])

  const expected = expectedTickerAggregate('AAPL')
  t.equal(out.aggregate.length, 1)
  const [agg] = out.aggregate
  t.equal(agg.ticker, 'AAPL')
  t.ok(Math.abs(agg.score - (expected.score as number)) < 1e-12, `weighted score ${agg.score} ≈ ${expected.score}`)
  t.equal(agg.label, expected.label)
  t.equal(agg.articles, expected.articles)
  t.same(agg.labelCounts, expected.labelCounts)
  t.same(out.timeSpan, expectedTimeSpan())
  t.equal(out.articlesConsidered, newsFixture.feed.length - 1, 'every article but the untitled one')

  const lines = first.text.split('\n')
  t.ok(lines[0]?.startsWith(`AAPL: ${expected.label} (weighted score ${(expected.score as number).toFixed(3)} over ${expected.articles} articles`), lines[0])
  t.match(lines[0], `${out.timeSpan.from} → ${out.timeSpan.to}`)

  t.equal(out.articles.length, 3, 'at most `limit` articles')
  t.equal(out.freshness.cached, false)
  t.equal(out.freshness.stale, false)
  t.equal(out.freshness.note, null)
  t.equal(out.quota.used, 1)
  t.equal(out.quota.state, 'ok')

  t.equal(ctx.upstream.hits.length, 1)
  const params = ctx.upstream.hits[0]!.params
  t.equal(params.get('function'), 'NEWS_SENTIMENT')
  t.equal(params.get('tickers'), 'AAPL')
  t.equal(params.get('limit'), '1000', 'the upstream always gets its maximum, 1000')
  t.equal(params.get('sort'), 'LATEST')

  // Another limit is the same question: served from the cache.
  const all = await call(TOOL, { ticker: 'AAPL', limit: 50 })
  t.equal(ctx.upstream.hits.length, 1, 'no second upstream call')
  const full = all.result?.structuredContent
  t.equal(full.freshness.cached, true)
  t.same(full.aggregate, out.aggregate)

  const titled = fixtureArticles()
  t.equal(full.articles.length, titled.length)
  t.notOk(full.articles.some((a: { title: string }) => a.title === ''), 'the untitled article is dropped')
  t.same(full.articles.slice(0, 3), out.articles, 'the first three are the same with a larger limit')

  // Most relevant to AAPL first, ties in feed order.
  const relevance = (title: string): number => {
    const entry = rawTickerEntry(titled.find(a => a.title === title)!, 'AAPL')
    return entry?.relevance ?? 0
  }
  const got = full.articles.map((a: { title: string }) => relevance(a.title))
  t.same(got, [...got].sort((a, b) => b - a), `ordered by relevance: ${got.join(', ')}`)

  for (const raw of titled) {
    const view = full.articles.find((a: { title: string }) => a.title === raw.title)
    t.ok(view, `${raw.title} is listed`)
    t.equal(view.publishedAt, referenceIso(raw.time_published), `${raw.time_published} → ${view.publishedAt}`)
    t.ok(view.summary.length <= 280, 'summary trimmed')
    if (raw.summary.trim().length > 280) t.ok(view.summary.endsWith('…'), 'a long summary ends with an ellipsis')
    else t.equal(view.summary, raw.summary.trim())
    const entry = rawTickerEntry(raw, 'AAPL')
    if (entry === undefined) {
      t.same(view.tickerSentiment, [], 'an article that does not score AAPL has no AAPL entry')
    } else {
      t.equal(view.tickerSentiment.length, 1, 'only the asked ticker')
      t.equal(view.tickerSentiment[0].label, entry.score === null ? null : referenceLabel(entry.score), 'label recomputed')
    }
    t.equal(view.overallSentiment.label, referenceLabel(Number(raw.overall_sentiment_score)))
  }
  const july = full.articles.find((a: { publishedAt: string | null }) => a.publishedAt?.startsWith('2024-07-12'))
  t.equal(july.publishedAt, '2024-07-12T18:30:00Z', 'a July time is EDT, UTC−4')
  const january = full.articles.find((a: { publishedAt: string | null }) => a.publishedAt?.startsWith('2024-01-15'))
  t.equal(january.publishedAt, '2024-01-15T14:15:00Z', 'a January time is EST, UTC−5')
  const malformed = titled.find(a => a.time_published === 'not-a-time')!
  t.equal(full.articles.find((a: { title: string }) => a.title === malformed.title).publishedAt, null, 'a malformed time is null, the article kept')
  const mislabelled = titled.find(a => rawTickerEntry(a, 'AAPL')?.score === 0.15)!
  t.equal(rawTickerEntry(mislabelled, 'AAPL')?.score, 0.15)
  t.equal(full.articles.find((a: { title: string }) => a.title === mislabelled.title).tickerSentiment[0].label, 'Somewhat-Bullish',
    'the fixture calls 0.15 Neutral; the thresholds say Somewhat-Bullish')

  // The text: one line per article header, the aggregate, no JSON.
  t.notMatch(all.text, /[{}]/, 'no JSON in the text')
  t.ok(all.text.length < 4000, `compact text (${all.text.length} characters)`)
  t.match(all.text, `${titled.length} of ${titled.length} articles, most relevant first:`)
  t.match(all.text, 'AAPL n/a n/a (relevance 0.000)', 'an unscored entry reads n/a')

  // A ticker the feed does not score: no aggregate, articles still listed (the fake answers every query with the fixture).
  const other = await call(TOOL, { ticker: 'NVDA', limit: 2 })
  t.equal(other.result?.structuredContent.aggregate[0].score, null)
  t.equal(other.result?.structuredContent.aggregate[0].label, null)
  t.ok(other.text.startsWith('NVDA: no scored articles'), other.text.split('\n')[0])

  assertNoSecrets(t, ctx, [first, all, other])
})

t.test('several tickers: one aggregate each, sent as one comma-joined list', async t => {
  const ctx = await buildApp(t)
  const call = await toolCaller(ctx)
  const res = await call(TOOL, { tickers: ['aapl', 'MSFT', 'AAPL'], limit: 1 })
  const out = res.result?.structuredContent
  t.same(out.tickers, ['AAPL', 'MSFT'], 'upper-cased, duplicates dropped')
  t.same(out.aggregate.map((a: { ticker: string }) => a.ticker), ['AAPL', 'MSFT'])
  const msft = expectedTickerAggregate('MSFT')
  t.ok(Math.abs(out.aggregate[1].score - (msft.score as number)) < 1e-12)
  t.same(out.aggregate[1].labelCounts, msft.labelCounts)
  t.equal(ctx.upstream.hits[0]!.params.get('tickers'), 'AAPL,MSFT')
  t.match(res.text.split('\n')[0], / \| MSFT: /, 'both tickers lead the text')

  const both = await call(TOOL, { ticker: 'tsm', tickers: ['AAPL', 'TSM'], limit: 1 })
  t.same(both.result?.structuredContent.tickers, ['TSM', 'AAPL'], 'ticker and tickers together mean all of them, once each')
  t.equal(ctx.upstream.hits[1]!.params.get('tickers'), 'TSM,AAPL')

  // The required `ticker` takes the list itself, or Alpha Vantage's comma-separated form: the same question, cached.
  for (const ticker of [['AAPL', 'msft'], 'aapl,MSFT']) {
    const same = await call(TOOL, { ticker, limit: 1 })
    t.same(same.result?.structuredContent.tickers, ['AAPL', 'MSFT'], `ticker ${JSON.stringify(ticker)}`)
    t.equal(same.result?.structuredContent.freshness.cached, true, 'answered by the first call\'s cached feed')
  }
  const mixed = await call(TOOL, { ticker: 'AAPL', tickers: 'MSFT,TSM', limit: 1 })
  t.same(mixed.result?.structuredContent.tickers, ['AAPL', 'MSFT', 'TSM'])
  t.equal(ctx.upstream.hits.length, 3)
})

t.test('the JSON Schema a model reads requires one ticker', async t => {
  const ctx = await buildApp(t)
  const session = await openSession(ctx)
  const res = await ctx.app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { ...MCP_HEADERS, authorization: `Bearer ${ctx.token}`, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' },
    payload: { jsonrpc: '2.0', id: 7, method: 'tools/list' }
  })
  const tool = res.json().result.tools.find((x: { name: string }) => x.name === TOOL)
  t.same(tool.inputSchema.required, ['ticker'])
  const ticker = tool.inputSchema.properties.ticker
  t.same(ticker.anyOf.map((s: { type: string }) => s.type), ['string', 'array'], 'one symbol or several')
  t.equal(ticker.anyOf[1].maxItems, 5)
  t.equal(tool.inputSchema.properties.tickers, undefined, 'the old name works but is not advertised')
})

t.test('an empty feed says so', async t => {
  const ctx = await buildApp(t)
  ctx.upstream.mode = 'empty'
  const call = await toolCaller(ctx)
  const res = await call(TOOL, { ticker: 'AAPL' })
  t.equal(res.result?.isError, undefined)
  t.same(res.result?.structuredContent.timeSpan, { from: null, to: null })
  t.same(res.result?.structuredContent.articles, [])
  t.match(res.text, /^AAPL: no scored articles\n/)
  t.match(res.text, 'No news articles found for AAPL')
})

t.test('concurrent identical calls make one upstream request', async t => {
  const ctx = await buildApp(t)
  ctx.upstream.mode = 'slow'
  ctx.upstream.slowMs = 200
  const call = await toolCaller(ctx)
  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => call(TOOL, { ticker: 'AAPL', limit: 1 + i })))
  t.equal(ctx.upstream.hits.length, 1)
  for (const [i, a] of answers.entries()) {
    t.equal(a.result?.isError, undefined)
    t.equal(a.result?.structuredContent.articles.length, Math.min(1 + i, fixtureArticles().length))
    t.equal(a.result?.structuredContent.freshness.cached, false, 'a waiter on the shared call is not a cache hit')
  }
  t.equal(answers[0]!.result?.structuredContent.quota.used, 1, 'one request counted')
})

t.test('stale-if-error: the last good answer, marked stale, when the upstream fails', async t => {
  const ctx = await buildApp(t, { NEWS_CACHE_TTL_SEC: '0', ALPHA_VANTAGE_RETRIES: '0' })
  const call = await toolCaller(ctx)
  const good = await call(TOOL, { ticker: 'AAPL' })
  t.equal(good.result?.structuredContent.freshness.stale, false)

  const modes: UpstreamMode[] = ['http-503', 'bad-json', 'information-limit']
  const answers = []
  for (const mode of modes) {
    ctx.upstream.mode = mode
    const res = await call(TOOL, { ticker: 'AAPL' })
    answers.push(res)
    const out = res.result?.structuredContent
    t.equal(res.result?.isError, undefined, `${mode}: an answer, not an error`)
    t.equal(out.freshness.stale, true, `${mode}: stale`)
    t.equal(out.freshness.cached, true)
    t.equal(out.freshness.fetchedAt, good.result?.structuredContent.freshness.fetchedAt, 'the good answer\'s time')
    t.same(out.aggregate, good.result?.structuredContent.aggregate, 'the good answer\'s figures')
    t.match(out.freshness.note, /^Stale answer \(\d+ s old\): Alpha Vantage/)
    t.match(res.text.split('\n')[1], new RegExp(`^Note: this answer is from ${out.freshness.fetchedAt} \\(${out.freshness.ageSeconds} s old\\) because Alpha Vantage could not be asked: `))
  }
  t.equal(ctx.upstream.hits.length, 4)
  t.match(answers[0]!.text, 'HTTP 503')
  t.match(answers[1]!.text, 'unreadable')
  t.match(answers[2]!.text, /daily limit for this server's API key is reached; the next try is at \d\d:\d\d:\d\d UTC/)
  t.equal(answers[2]!.result?.structuredContent.quota.state, 'spent', 'the upstream\'s daily-limit answer spends the quota')

  // Quota spent: still the stale answer, without asking upstream.
  const refused = await call(TOOL, { ticker: 'AAPL' })
  t.equal(refused.result?.structuredContent.freshness.stale, true)
  t.match(refused.result?.structuredContent.freshness.note, 'daily limit')
  t.equal(ctx.upstream.hits.length, 4)
  assertNoSecrets(t, ctx, [good, ...answers, refused])
})

t.test('stale-if-error does not cover a wrong question', async t => {
  const ctx = await buildApp(t, { NEWS_CACHE_TTL_SEC: '0' })
  const call = await toolCaller(ctx)
  await call(TOOL, { ticker: 'AAPL' })
  ctx.upstream.mode = 'error-message'
  const res = await call(TOOL, { ticker: 'AAPL' })
  t.equal(res.result?.isError, true)
  t.match(res.text, 'unknown or delisted ticker')
})

t.test('retries: timeouts and 5xx only', async t => {
  const ctx = await buildApp(t, { ALPHA_VANTAGE_RETRIES: '2', ALPHA_VANTAGE_RETRY_BASE_MS: '1', ALPHA_VANTAGE_TIMEOUT_MS: '100', ALPHA_VANTAGE_CIRCUIT_THRESHOLD: '100' })
  const call = await toolCaller(ctx)
  const cases: Array<[UpstreamMode, number, RegExp]> = [
    ['http-500', 3, /unavailable \(HTTP 500\)/],
    ['hang', 3, /did not answer within 0\.1 s/],
    ['information-demo', 1, /demo key/],
    ['note', 1, /rate limit/],
    ['error-message', 1, /unknown or delisted ticker/]
  ]
  const answers = []
  for (const [i, [mode, hits, message]] of cases.entries()) {
    ctx.upstream.hits = []
    ctx.upstream.mode = mode
    const res = await call(TOOL, { ticker: `T${i}` })
    answers.push(res)
    t.equal(ctx.upstream.hits.length, hits, `${mode}: ${hits} upstream request(s)`)
    t.equal(res.result?.isError, true)
    t.match(res.text, message)
  }
  // A retry that succeeds is an ordinary answer.
  ctx.upstream.hits = []
  ctx.upstream.mode = 'ok'
  ctx.upstream.queue = ['http-503']
  const recovered = await call(TOOL, { ticker: 'AAPL' })
  t.equal(ctx.upstream.hits.length, 2)
  t.equal(recovered.result?.isError, undefined)
  assertNoSecrets(t, ctx, [...answers, recovered])
})

t.test('each upstream failure, with nothing cached, is an error the model can act on', async t => {
  const ctx = await buildApp(t, { ALPHA_VANTAGE_RETRIES: '0', ALPHA_VANTAGE_CIRCUIT_THRESHOLD: '100' })
  const call = await toolCaller(ctx)
  const cases: Array<[UpstreamMode, RegExp]> = [
    ['error-message', /rejected the query: check the ticker symbols .*unknown or delisted ticker/],
    ['information-demo', /public demo key.*ALPHA_VANTAGE_API_KEY/],
    ['information-premium', /premium plans/],
    ['note', /rate limit for this server's API key is reached; the next try is at \d\d:\d\d:00 UTC/],
    ['http-429', /rate limit for this server's API key is reached; the next try is at \d\d:\d\d:00 UTC/],
    ['http-404', /answered HTTP 404/],
    ['http-503', /unavailable \(HTTP 503\); try again shortly/],
    ['bad-json', /unreadable \(non-JSON\) response/],
    ['not-object', /unexpected response/],
    ['no-feed', /without a news feed/],
    ['information-limit', /daily limit for this server's API key is reached; the next try is at \d\d:\d\d:\d\d UTC/]
  ]
  const answers = []
  for (const [i, [mode, message]] of cases.entries()) {
    ctx.upstream.mode = mode
    const res = await call(TOOL, { ticker: `E${i}` })
    answers.push(res)
    t.equal(res.result?.isError, true, `${mode}: isError`)
    t.match(res.text, message, `${mode}: ${res.text}`)
    t.equal(res.result?.structuredContent, undefined, 'no structured content on an error')
  }
  t.equal(ctx.upstream.hits.length, cases.length, 'one request each')
  // The fake echoes the key in its daily-limit message: it must not come through.
  const echoed = cases.findIndex(([mode]) => mode === 'information-limit')
  t.notMatch(answers[echoed]!.text, API_KEY)

  // The daily-limit answer holds new questions back until the next probe (30 min by default), not until midnight.
  ctx.upstream.mode = 'ok'
  const refused = await call(TOOL, { ticker: 'AAPL' })
  t.equal(refused.result?.isError, true)
  const next = /the next try is at (\d\d:\d\d:\d\d) UTC \(([^)]+)\)/.exec(refused.text)
  t.ok(next, refused.text)
  const nextTry = Date.parse(next?.[2] ?? '')
  t.ok(nextTry > Date.now() + 29 * 60_000 && nextTry <= Date.now() + 30 * 60_000, 'the next try is in 30 minutes')
  t.equal(ctx.upstream.hits.length, cases.length, 'no upstream call')
  assertNoSecrets(t, ctx, [...answers, refused])
})

t.test('the daily quota: near, spent, cached questions still answered', async t => {
  const ctx = await buildApp(t, { ALPHA_VANTAGE_DAILY_LIMIT: '3' })
  const call = await toolCaller(ctx)
  const one = await call(TOOL, { ticker: 'AAPL' })
  t.equal(one.result?.structuredContent.quota.state, 'ok')
  t.notMatch(one.text, 'Note:')
  const two = await call(TOOL, { ticker: 'MSFT' })
  t.match(two.result?.structuredContent.quota, { state: 'near', used: 2, limit: 3, remaining: 1 })
  t.match(two.text.split('\n')[1], 'Note: 2 of 3 Alpha Vantage requests used today; prefer repeating earlier questions')
  const three = await call(TOOL, { ticker: 'TSLA' })
  t.equal(three.result?.structuredContent.quota.state, 'spent')
  t.match(three.text.split('\n')[1], 'Note: this server\'s Alpha Vantage quota for today is spent (3/3)')

  const four = await call(TOOL, { ticker: 'GOOG' })
  t.equal(four.result?.isError, true)
  t.match(four.text, 'has used its 3 Alpha Vantage requests for today')
  t.equal(ctx.upstream.hits.length, 3, 'the refused question never reached the upstream')

  const again = await call(TOOL, { ticker: 'msft', limit: 2 })
  t.equal(again.result?.isError, undefined, 'a cached question still answers')
  t.equal(again.result?.structuredContent.freshness.cached, true)
  t.equal(again.result?.structuredContent.freshness.stale, false)
  t.equal(ctx.upstream.hits.length, 3)
  const resetsAt = Date.parse(again.result?.structuredContent.quota.resetsAt)
  t.equal(resetsAt % 86_400_000, 0, 'resets at midnight UTC')
  t.ok(resetsAt > Date.now() && resetsAt <= Date.now() + 86_400_000, 'the next midnight')
})

t.test('the circuit opens after repeated failures', async t => {
  const ctx = await buildApp(t, { ALPHA_VANTAGE_CIRCUIT_THRESHOLD: '2', ALPHA_VANTAGE_RETRIES: '0', ALPHA_VANTAGE_CIRCUIT_COOLDOWN_SEC: '30' })
  ctx.upstream.mode = 'http-503'
  const call = await toolCaller(ctx)
  await call(TOOL, { ticker: 'AAPL' })
  await call(TOOL, { ticker: 'MSFT' })
  t.equal(ctx.upstream.hits.length, 2)
  t.match(ctx.logs.join('\n'), 'Alpha Vantage circuit opened')
  ctx.upstream.mode = 'ok'
  const res = await call(TOOL, { ticker: 'TSLA' })
  t.equal(res.result?.isError, true)
  t.match(res.text, /Alpha Vantage has been failing; this server stops calling it for (30|29) s\. Try again after that\./)
  t.equal(ctx.upstream.hits.length, 2, 'the open circuit kept the call from the upstream')
})

t.test('invalid arguments are refused before any upstream call', async t => {
  const ctx = await buildApp(t)
  const future = new Date(Date.now() + 86_400_000).toISOString()
  const cases: Array<[unknown, RegExp]> = [
    [{}, /ticker: is required/],
    [{ ticker: 'AA PL' }, /ticker: must be a ticker symbol/],
    [{ ticker: '<script>' }, /ticker: must be a ticker symbol/],
    [{ ticker: 'A'.repeat(200) }, /ticker: must be a ticker symbol/],
    [{ tickers: [] }, /ticker: must list 1 to 5 ticker symbols/],
    [{ tickers: ['A', 'B', 'C', 'D', 'E', 'F'] }, /ticker: must list 1 to 5 ticker symbols/],
    [{ tickers: ['AAPL', 'bad ticker'] }, /ticker\.1: must be a ticker symbol/],
    [{ ticker: ['AAPL', 'MSFT', 'bad ticker'] }, /ticker\.2: must be a ticker symbol/],
    [{ ticker: 42 }, /ticker: must be a ticker symbol/],
    [{ ticker: 'AAPL', topics: ['gossip'] }, /topics\.0: /],
    [{ ticker: 'AAPL', timeFrom: 'yesterday-ish' }, /timeFrom: must be an ISO 8601 time/],
    [{ ticker: 'AAPL', timeFrom: future }, /timeFrom: is in the future/],
    [{ ticker: 'AAPL', timeFrom: '2024-05-02', timeTo: '2024-05-01' }, /timeTo: must be later than timeFrom/],
    [{ ticker: 'AAPL', timeTo: '20240231T1200' }, /timeTo: must be an ISO 8601 time/],
    [{ ticker: 'AAPL', sort: 'NEWEST' }, /sort: /],
    [{ ticker: 'AAPL', limit: 0 }, /limit: .*1/],
    [{ ticker: 'AAPL', limit: 51 }, /limit: .*50/],
    [{ ticker: 'AAPL', limit: 2.5 }, /limit: .*int/],
    [{ ticker: 'AAPL', limit: '10' }, /limit: .*number/]
  ]
  const old = await toolCaller(ctx, '2025-06-18')
  const current = await toolCaller(ctx, '2025-11-25')
  for (const [args, message] of cases) {
    const a = await old(TOOL, args)
    t.equal(a.error?.code, -32602, `2025-06-18 ${JSON.stringify(args).slice(0, 60)}: -32602`)
    t.match(a.error?.message, message)
    const b = await current(TOOL, args)
    t.equal(b.result?.isError, true, '2025-11-25: an isError result')
    t.match(b.text, message)
  }
  t.equal(ctx.upstream.hits.length, 0, 'the upstream never asked')
})

t.test('valid forms are accepted and converted for Alpha Vantage', async t => {
  const ctx = await buildApp(t)
  const call = await toolCaller(ctx)
  const asked = async (args: Record<string, unknown>): Promise<URLSearchParams> => {
    const res = await call(TOOL, args)
    t.equal(res.result?.isError, undefined, JSON.stringify(args))
    return ctx.upstream.hits.at(-1)!.params
  }
  t.equal((await asked({ ticker: 'BRK.B' })).get('tickers'), 'BRK.B')
  t.equal((await asked({ ticker: 'crypto:btc' })).get('tickers'), 'CRYPTO:BTC')
  t.equal((await asked({ ticker: ' FOREX:USD ' })).get('tickers'), 'FOREX:USD')
  t.equal((await asked({ tickers: ['aapl', 'brk-b'] })).get('tickers'), 'AAPL,BRK-B')
  t.equal((await asked({ tickers: ['tsla'] })).get('tickers'), 'TSLA', 'the old name with one symbol')

  const topics = await asked({ ticker: 'AAPL', topics: ['technology', 'earnings'], sort: 'RELEVANCE' })
  t.equal(topics.get('topics'), 'technology,earnings')
  t.equal(topics.get('sort'), 'RELEVANCE')
  t.equal((await asked({ ticker: 'AAPL', sort: 'EARLIEST' })).get('sort'), 'EARLIEST')

  // "7d" rounds down to a quarter hour, so repeated asks are one cached question.
  const step = 15 * 60_000
  const before = Math.floor((Date.now() - 7 * 86_400_000) / step) * step
  const relative = await asked({ ticker: 'AAPL', timeFrom: '7d' })
  const after = Math.floor((Date.now() - 7 * 86_400_000) / step) * step
  t.ok([referenceStamp(before), referenceStamp(after)].includes(relative.get('time_from') as string), `7d → ${relative.get('time_from')}`)
  t.equal(relative.get('time_to'), null)

  const windows: Array<[string, string, string, string]> = [
    ['2024-01-15T14:15Z', '2024-07-12T18:30:00Z', '20240115T0915', '20240712T1430'],
    ['2024-03-10', '2024-03-10T12:00:00+02:00', referenceStamp(Date.UTC(2024, 2, 10)), referenceStamp(Date.UTC(2024, 2, 10, 10))],
    ['2024-11-03 05:30', '2024-11-03T06:30Z', '20241103T0130', '20241103T0130']
  ]
  // One ticker per window: a window inside an earlier one would be cut from its cached feed, not asked.
  for (const [i, [from, to, timeFrom, timeTo]] of windows.entries()) {
    const params = await asked({ ticker: ['AAPL', 'MSFT', 'TSM'][i], timeFrom: from, timeTo: to })
    t.equal(params.get('time_from'), timeFrom, `timeFrom ${from}`)
    t.equal(params.get('time_to'), timeTo, `timeTo ${to}`)
  }
  // The first window in Alpha Vantage's own spelling is the same question: cached.
  const hits = ctx.upstream.hits.length
  const same = await call(TOOL, { ticker: 'AAPL', timeFrom: '20240115T0915', timeTo: '20240712T143000' })
  t.equal(same.result?.structuredContent.freshness.cached, true)
  t.equal(ctx.upstream.hits.length, hits)
  t.equal(referenceStamp(Date.UTC(2024, 2, 10)), '20240309T1900', 'the reference agrees: March 10 00:00Z is EST')
})

t.test('an unexpected failure in the news layer is a generic tool error', async t => {
  const ctx = await buildApp(t)
  // The service only throws AlphaVantageError; a bug could throw anything else.
  const query = Object.getOwnPropertyDescriptor(NewsService.prototype, 'query')!
  Object.defineProperty(NewsService.prototype, 'query', { ...query, value: async () => { throw new Error('internal detail /srv/x.ts:1') } })
  t.teardown(() => { Object.defineProperty(NewsService.prototype, 'query', query) })
  const call = await toolCaller(ctx)
  for (const [name, args] of [[TOOL, { ticker: 'AAPL' }], ['get_market_news', { topics: ['technology'] }]] as const) {
    const res = await call(name, args)
    t.equal(res.result?.isError, true)
    t.equal(res.text, `The tool ${name} failed unexpectedly; try again later.`)
  }
  t.ok(ctx.logs.some(line => line.includes('"level":50') && line.includes('internal detail')), 'the operator sees it in the log')
})
