import t, { type Test } from 'tap'
import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { jwtVerify } from 'jose'
import { JwksCache, JwksUnavailableError } from '../../../lib/auth/jwks-cache.js'
import { buildApp, type TestContext } from '../../helpers/build-app.js'
import { LocalIssuer, makeKey, type JwksMode } from '../../helpers/issuer.js'
import { jwksCacheOf, postInitialize } from '../../helpers/auth-requests.js'

/** An issuer in the given JWKS mode, closed when the test ends (buildApp closes only the issuers it starts). */
async function issuerIn (t: Test, mode: JwksMode): Promise<LocalIssuer> {
  const issuer = await LocalIssuer.start()
  issuer.jwksMode = mode
  t.teardown(() => issuer.close())
  return issuer
}

async function status (ctx: TestContext, token = ctx.token): Promise<number> {
  return (await postInitialize(ctx.app, `Bearer ${token}`)).statusCode
}

/** A token signed by a key the issuer never published, under a kid nobody knows. */
async function strayTokens (ctx: TestContext, n: number): Promise<string[]> {
  const stray = await makeKey('RS256')
  return await Promise.all(Array.from({ length: n }, async () => await ctx.issuer.token({ key: stray, header: { kid: `k-${randomBytes(6).toString('hex')}` } })))
}

t.test('JWKS unreachable at boot: the server starts, answers 503 (not 401), and recovers', async t => {
  const issuer = await issuerIn(t, 'down')
  const ctx = await buildApp(t, { AUTH_JWKS_COOLDOWN_SEC: '1' }, { issuer, skipOverride: true })
  t.equal(issuer.jwksHits, 1, 'the keys were fetched while booting')

  const ready = await ctx.app.inject({ url: '/ready' })
  t.equal(ready.statusCode, 503)
  t.equal(ready.headers['retry-after'], '5')
  t.same(ready.json(), { status: 'not_ready', checks: { config: 'ok', signingKeys: 'unavailable' } })
  t.equal((await ctx.app.inject({ url: '/health' })).statusCode, 200, 'alive all the same')

  // The token may well be good: this is the server's problem (RFC 9110 §15.6.4), not an RFC 6750 challenge.
  const res = await postInitialize(ctx.app, `Bearer ${ctx.token}`)
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '1', 'retry once the cooldown is over')
  t.equal(res.headers['www-authenticate'], undefined)
  t.same(res.json(), { error: 'temporarily_unavailable', error_description: 'the authorization server\'s signing keys are unavailable' })
  t.equal(issuer.jwksHits, 1, 'within the cooldown, requests do not refetch')

  issuer.jwksMode = 'ok'
  await sleep(1050)
  t.equal(await status(ctx), 200, 'after the cooldown, a request fetches the keys and passes')
  t.equal(issuer.jwksHits, 2)
  t.equal((await ctx.app.inject({ url: '/ready' })).statusCode, 200)
  t.equal(jwksCacheOf(ctx.app).lastError, undefined)
})

t.test('a JWKS that is slow, huge, malformed or has no keys: bounded failure, then 503', async t => {
  const cases: Array<[JwksMode, RegExp]> = [
    ['slow', /aborted|timeout/i],
    ['huge', /JWKS larger than 524288 bytes/],
    ['huge-declared', /JWKS larger than 524288 bytes/],
    ['malformed', /JWKS is not valid JSON/],
    ['no-keys-array', /JWKS has no \\?"keys\\?" array/],
    ['down', /JWKS endpoint answered HTTP 503/]
  ]
  for (const [mode, error] of cases) {
    t.test(mode, async t => {
      const issuer = await issuerIn(t, mode)
      issuer.slowMs = 5000
      const started = Date.now()
      const ctx = await buildApp(t, { AUTH_JWKS_TIMEOUT_MS: '200' }, { issuer, skipOverride: true })
      t.ok(Date.now() - started < 2000, 'the boot did not wait for the issuer')
      t.match(jwksCacheOf(ctx.app).lastError?.message, error)
      t.equal((await ctx.app.inject({ url: '/ready' })).statusCode, 503)
      t.equal(await status(ctx), 503)
      const warning = ctx.logs.find(line => line.includes('JWKS fetch failed'))
      t.match(warning, error, 'the failure is logged')
    })
  }
})

t.test('JWKS unreachable later: the keys already held keep verifying', async t => {
  const ctx = await buildApp(t, { AUTH_JWKS_COOLDOWN_SEC: '0', AUTH_JWKS_TIMEOUT_MS: '200' }, { skipOverride: true })
  const cache = jwksCacheOf(ctx.app)
  ctx.issuer.slowMs = 5000
  for (const mode of ['down', 'slow', 'huge', 'malformed', 'no-keys-array'] as const) {
    ctx.issuer.jwksMode = mode
    await t.rejects(cache.refresh(), `${mode}: the refresh fails`)
    t.ok(cache.ready, `${mode}: the old keys are kept`)
    t.equal(await status(ctx, await ctx.issuer.token()), 200, `${mode}: a new token signed with a held key verifies`)
    t.equal((await ctx.app.inject({ url: '/ready' })).statusCode, 200, `${mode}: still ready`)
  }
  ctx.issuer.jwksMode = 'down'
  const [unknown] = await strayTokens(ctx, 1)
  t.equal(await status(ctx, unknown), 401, 'an unknown kid, the refetch failing, is still an invalid token, not 503')
})

t.test('key rotation: a token with the new kid verifies after one refetch', async t => {
  const ctx = await buildApp(t, { AUTH_JWKS_COOLDOWN_SEC: '0' }, { skipOverride: true })
  const hits = ctx.issuer.jwksHits
  const key = await ctx.issuer.rotate()
  t.equal(await status(ctx, await ctx.issuer.token({ key })), 200)
  t.equal(ctx.issuer.jwksHits, hits + 1, 'one refetch')
  t.equal(await status(ctx, await ctx.issuer.token({ key })), 200)
  t.equal(ctx.issuer.jwksHits, hits + 1, 'the new key is held from then on')
})

t.test('without a kid, one candidate key verifies; two are ambiguous', async t => {
  const ctx = await buildApp(t, { AUTH_JWKS_COOLDOWN_SEC: '0' }, { skipOverride: true })
  t.equal(await status(ctx, await ctx.issuer.token({ header: { kid: undefined } })), 200, 'one RS256 key published')
  const old = ctx.issuer.keys[0]
  await ctx.issuer.rotate()
  await jwksCacheOf(ctx.app).refresh()
  const res = await postInitialize(ctx.app, `Bearer ${await ctx.issuer.token({ key: old, header: { kid: undefined } })}`)
  t.equal(res.statusCode, 401)
  t.equal(res.json().error_description, 'the access token names no key id (kid) and several signing keys match it')
})

t.test('a flood of unknown kids refetches at most once per cooldown', async t => {
  const ctx = await buildApp(t, { AUTH_JWKS_COOLDOWN_SEC: '1' }, { skipOverride: true })
  const tokens = await strayTokens(ctx, 100)
  await sleep(1050)
  const hits = ctx.issuer.jwksHits
  const burst = await Promise.all(tokens.slice(0, 50).map(async token => await status(ctx, token)))
  t.same(new Set(burst), new Set([401]))
  t.equal(ctx.issuer.jwksHits, hits + 1, '50 concurrent unknown kids: one fetch')
  for (const token of tokens.slice(50)) t.equal(await status(ctx, token), 401)
  t.equal(ctx.issuer.jwksHits, hits + 1, '50 more within the cooldown: no fetch')
})

t.test('JwksCache on its own', async t => {
  const issuer = await issuerIn(t, 'ok')
  issuer.audience = ['aud']
  const options = { uri: issuer.jwksUri, timeoutMs: 500, cooldownMs: 0, refreshMs: 40 }

  t.test('fetches on first use when not started', async t => {
    const cache = new JwksCache(options)
    t.equal(cache.ready, false)
    const { payload } = await jwtVerify(await issuer.token(), cache.getKey, { audience: 'aud' })
    t.equal(payload.sub, 'user_123')
    t.equal(cache.fetches, 1)
    t.type(cache.keysLoadedAt, 'number')
  })

  t.test('refreshes in the background until closed; concurrent refreshes share one fetch', async t => {
    const cache = new JwksCache(options)
    const hits = issuer.jwksHits
    await cache.start()
    await sleep(150)
    cache.close()
    t.ok(issuer.jwksHits - hits >= 3, `refreshed in the background (${issuer.jwksHits - hits} fetches)`)
    const after = issuer.jwksHits
    await sleep(100)
    t.equal(issuer.jwksHits, after, 'no refresh after close()')
    await Promise.all([cache.refresh(), cache.refresh(), cache.refresh()])
    t.equal(issuer.jwksHits, after + 1, 'one fetch for three callers')
  })

  t.test('start() never throws; without keys, getKey says unavailable with a retry delay', async t => {
    issuer.jwksMode = 'down'
    t.teardown(() => { issuer.jwksMode = 'ok' })
    const cache = new JwksCache({ ...options, cooldownMs: 60_000 })
    await cache.start()
    cache.close()
    const err = await cache.getKey({ alg: 'RS256', kid: 'x' }, { payload: '', signature: '' }).catch((e: unknown) => e)
    t.ok(err instanceof JwksUnavailableError)
    t.equal((err as JwksUnavailableError).retryAfterSec, 60)
    t.equal((err as JwksUnavailableError).code, 'ERR_JWKS_UNAVAILABLE')
    t.match((err as JwksUnavailableError).cause, { message: 'JWKS endpoint answered HTTP 503' })
  })

  t.test('a connection error is a failed fetch like any other', async t => {
    const cache = new JwksCache({ ...options, uri: 'http://127.0.0.1:1/keys' })
    await t.rejects(cache.refresh())
    t.equal(cache.ready, false)
    t.ok(cache.lastError instanceof Error)
  })
})
