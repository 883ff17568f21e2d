import t, { type Test } from 'tap'
import { buildApp, API_KEY, type TestContext } from '../helpers/build-app.js'
import { toolCaller, type ToolAnswer } from '../helpers/news-tools.js'
import { freePort } from '../helpers/mcp-app.js'

const TOOL = 'get_news_sentiment'

/** A caller in its own session with a token for `subject`. */
async function callerAs (ctx: TestContext, subject: string): Promise<(name: string, args: unknown) => Promise<ToolAnswer>> {
  return await toolCaller({ ...ctx, token: await ctx.issuer.token({ claims: { sub: subject } }) })
}

t.test('one subject cannot spend the whole daily quota; cached answers stay free for all (issue 8.4)', async t => {
  const ctx = await buildApp(t, { ALPHA_VANTAGE_DAILY_LIMIT: '10', ALPHA_VANTAGE_SUBJECT_DAILY_SHARE: '0.3' }, { skipOverride: true })
  const mallory = await callerAs(ctx, 'mallory')
  const alice = await callerAs(ctx, 'alice')
  for (const ticker of ['T1', 'T2', 'T3']) t.equal((await mallory(TOOL, { ticker })).result?.isError, undefined, `${ticker}: within the share`)
  const refused = await mallory(TOOL, { ticker: 'T4' })
  t.equal(refused.result?.isError, true)
  t.match(refused.text, /used your share of this server's Alpha Vantage requests for today \(daily limit: 3 new questions per user out of the server's 10\)/)
  t.equal(ctx.upstream.hits.length, 3, 'the refused question never reached the upstream')
  t.equal((await mallory(TOOL, { ticker: 'T1', limit: 2 })).result?.structuredContent.freshness.cached, true, 'a question asked before is still answered')

  t.equal((await alice(TOOL, { ticker: 'T4' })).result?.isError, undefined, 'another subject still gets new answers')
  t.equal((await alice(TOOL, { ticker: 'T2' })).result?.structuredContent.freshness.cached, true, 'and others\' cached ones for free')
  t.equal(ctx.upstream.hits.length, 4)
  t.equal(await ctx.app.news.quotaRemaining('user:alice'), 2, 'alice: 3 − 1 (charged by principal)')
  t.equal(await ctx.app.news.quotaRemaining('user:mallory'), 0)
  t.equal(await ctx.app.news.quotaRemaining(), 6, 'the server: 10 − 4')
})

/** Every trace a failure leaves: the tool results, their notes, the logs. */
function assertKeyNowhere (t: Test, ctx: TestContext, answers: ToolAnswer[]): void {
  for (const a of answers) {
    t.notOk(a.res.body.includes(API_KEY), 'no result, message or note carries the API key')
    t.notOk(a.res.body.includes('apikey'), 'nor the request URL')
  }
  t.notOk(ctx.logs.some(line => line.includes(API_KEY)), 'no log line carries the API key')
}

t.test('connection refused, reset and timeout: the API key appears in no message, result, note or log line (issue 8.11)', async t => {
  const refusedUrl = `http://127.0.0.1:${await freePort()}/query?apikey=${API_KEY}`
  const cases: Array<[string, (ctx: TestContext) => void, RegExp]> = [
    ['refused', () => {}, /unreachable right now/],
    ['reset', ctx => { ctx.upstream.mode = 'reset' }, /unreachable right now/],
    ['timeout', ctx => { ctx.upstream.mode = 'hang' }, /did not answer within 0\.2 s/]
  ]
  for (const [name, fail, message] of cases) {
    const env: Record<string, string> = { ALPHA_VANTAGE_TIMEOUT_MS: '200', ALPHA_VANTAGE_RETRIES: '1', ALPHA_VANTAGE_RETRY_BASE_MS: '1', NEWS_CACHE_TTL_SEC: '0' }
    const ctx = await buildApp(t, env)
    const call = await callerAs(ctx, 'user_123')
    const good = await call(TOOL, { ticker: 'AAPL' })
    t.equal(good.result?.isError, undefined)
    if (name === 'refused') {
      // The same app with its upstream gone: a port nobody listens on, the key in its query too.
      const gone = await buildApp(t, { ...env, ALPHA_VANTAGE_BASE_URL: refusedUrl })
      const callGone = await callerAs(gone, 'user_123')
      const error = await callGone(TOOL, { ticker: 'AAPL' })
      t.equal(error.result?.isError, true, `${name}: an error result`)
      t.match(error.text, message)
      assertKeyNowhere(t, gone, [error])
      continue
    }
    fail(ctx)
    const stale = await call(TOOL, { ticker: 'AAPL' })
    t.equal(stale.result?.structuredContent.freshness.stale, true, `${name}: the last good answer, stale`)
    t.match(stale.result?.structuredContent.freshness.note, message, `${name}: the note says why`)
    const error = await call(TOOL, { ticker: 'MSFT' })
    t.equal(error.result?.isError, true, `${name}: nothing cached, an error`)
    t.match(error.text, message)
    assertKeyNowhere(t, ctx, [good, stale, error])
  }
})
