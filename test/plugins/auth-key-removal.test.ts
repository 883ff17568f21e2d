import t, { type Test } from 'tap'
import { buildApp, type TestContext } from '../helpers/build-app.js'
import { LocalIssuer, makeKey, type SigningKey } from '../helpers/issuer.js'
import { jwksCacheOf, postInitialize } from '../helpers/auth-requests.js'

// Split from auth.test.ts to keep each file within tap's time limit on a loaded machine.

/** A 401 invalid_token with this description. */
async function assertDenied (t: Test, ctx: TestContext, authorization: string, description: string): Promise<void> {
  const res = await postInitialize(ctx.app, authorization)
  t.equal(res.statusCode, 401, 'status')
  t.same(res.json(), { error: 'invalid_token', error_description: description })
}

t.test('clock tolerance: exp 5 s ago and nbf 5 s ahead pass with the default 10 s, and fail with AUTH_CLOCK_TOLERANCE_SEC=0', async t => {
  const issuer = await LocalIssuer.start()
  t.teardown(() => issuer.close())
  const lenient = await buildApp(t, {}, { issuer })
  const strict = await buildApp(t, { AUTH_CLOCK_TOLERANCE_SEC: '0' }, { issuer })
  const now = Math.floor(Date.now() / 1000)
  const expired = await issuer.token({ claims: { exp: now - 5 } })
  const early = await issuer.token({ claims: { nbf: now + 5 } })
  t.equal((await postInitialize(lenient.app, `Bearer ${expired}`)).statusCode, 200, 'exp 5 s ago, tolerance 10 s')
  t.equal((await postInitialize(lenient.app, `Bearer ${early}`)).statusCode, 200, 'nbf 5 s ahead, tolerance 10 s')
  await assertDenied(t, strict, `Bearer ${expired}`, 'the access token has expired')
  await assertDenied(t, strict, `Bearer ${early}`, 'the access token is not valid yet')
  const beyond = await issuer.token({ claims: { exp: now - 15 } })
  await assertDenied(t, lenient, `Bearer ${beyond}`, 'the access token has expired')
})

t.test('token cache and key removal (issue 8, point 7)', async t => {
  t.test('a refresh that drops a signing key drops the verifications it made; the others stay cached', async t => {
    const ctx = await buildApp(t, { AUTH_JWKS_COOLDOWN_SEC: '0' }, { skipOverride: true })
    const verifier = ctx.app.accessTokenVerifier
    const ec = ctx.issuer.keys[1] as SigningKey
    const byRsa = ctx.token
    const byEc = await ctx.issuer.token({ key: ec })
    for (const token of [byRsa, byEc]) t.equal((await postInitialize(ctx.app, `Bearer ${token}`)).statusCode, 200)
    const before = verifier.verifications
    // rotate() publishes a new key and drops the oldest published one, the ES256 key.
    await ctx.issuer.rotate()
    t.notOk(ctx.issuer.keys.some(k => k.kid === ec.kid))
    await jwksCacheOf(ctx.app).refresh()
    await assertDenied(t, ctx, `Bearer ${byEc}`, 'no signing key of the authorization server matches the access token')
    t.equal((await postInitialize(ctx.app, `Bearer ${byRsa}`)).statusCode, 200, 'a token whose key is still published passes')
    t.equal(verifier.verifications, before + 1, 'only the token whose key left was verified again; the other came from the cache')
    t.ok(ctx.logs.some(line => line.includes('"forgottenVerifications":1')), 'the refresh says how many verifications it forgot')
  })

  t.test('a key whose material changes under the same kid counts as removed', async t => {
    const ctx = await buildApp(t, { AUTH_JWKS_COOLDOWN_SEC: '0' }, { skipOverride: true })
    t.equal((await postInitialize(ctx.app, `Bearer ${ctx.token}`)).statusCode, 200)
    const replacement = await makeKey('RS256')
    const old = ctx.issuer.keys[0] as SigningKey
    ctx.issuer.keys[0] = { ...replacement, kid: old.kid, publicJwk: { ...replacement.publicJwk, kid: old.kid } }
    await jwksCacheOf(ctx.app).refresh()
    t.equal((await postInitialize(ctx.app, `Bearer ${ctx.token}`)).statusCode, 401, 'the old signature no longer verifies')
  })

  t.test('a token without kid goes from the cache when any key leaves', async t => {
    const ctx = await buildApp(t, { AUTH_JWKS_COOLDOWN_SEC: '0' }, { skipOverride: true })
    const verifier = ctx.app.accessTokenVerifier
    const kidless = await ctx.issuer.token({ header: { kid: undefined } })
    t.equal((await postInitialize(ctx.app, `Bearer ${kidless}`)).statusCode, 200)
    const before = verifier.verifications
    await ctx.issuer.rotate()
    await jwksCacheOf(ctx.app).refresh()
    // Its RS256 key is still published, but a second RS256 key now makes a kid-less token ambiguous.
    t.equal((await postInitialize(ctx.app, `Bearer ${kidless}`)).statusCode, 401)
    t.equal(verifier.verifications, before + 1, 'verified again, not served from the cache')
  })

  t.test('a refresh that removes nothing keeps every verification', async t => {
    const ctx = await buildApp(t, { AUTH_JWKS_COOLDOWN_SEC: '0' }, { skipOverride: true })
    const verifier = ctx.app.accessTokenVerifier
    t.equal((await postInitialize(ctx.app, `Bearer ${ctx.token}`)).statusCode, 200)
    const before = verifier.verifications
    ctx.issuer.keys.push(await makeKey('ES256'))
    await jwksCacheOf(ctx.app).refresh()
    t.equal((await postInitialize(ctx.app, `Bearer ${ctx.token}`)).statusCode, 200)
    t.equal(verifier.verifications, before, 'a key added: the cache stays')
  })
})
