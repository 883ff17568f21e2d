import t, { type Test } from 'tap'
import { createHmac, randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { exportSPKI } from 'jose'
import Fastify from 'fastify'
import authPlugin, { bearerChallenge, type AuthPluginOptions } from '../../plugins/auth.js'
import { buildApp, callTool, API_KEY, MCP_HEADERS, RESOURCE, initializeBody, openSession, type TestContext } from '../helpers/build-app.js'
import { makeKey, type SigningKey } from '../helpers/issuer.js'
import { craftToken, jwksCacheOf, parseChallenge, postInitialize, requestOverHttp } from '../helpers/auth-requests.js'

// What buildApp's ScaleKit-style environment publishes (SCALEKIT_RESOURCE_METADATA_URL).
const METADATA_URL = 'http://localhost:10000/.well-known/oauth-protected-resource/mcp'

/** Asserts one refusal: status, RFC 6750 challenge parameters, JSON body. */
async function assertDenied (t: Test, ctx: TestContext, authorization: string | undefined, expected: { status: number, error?: string, description: string, scope?: string }): Promise<void> {
  const res = await postInitialize(ctx.app, authorization)
  t.equal(res.statusCode, expected.status, 'status')
  const challenge = parseChallenge(res.headers['www-authenticate'])
  t.equal(challenge.scheme, 'Bearer')
  const params: Record<string, string> = { resource_metadata: METADATA_URL }
  if (expected.error !== undefined) {
    params.error = expected.error
    params.error_description = expected.description
  }
  if (expected.scope !== undefined) params.scope = expected.scope
  t.same(challenge.params, params, 'challenge parameters')
  t.same(res.json(), { error: expected.error ?? 'invalid_request', error_description: expected.description }, 'body')
}

t.test('tokens the server accepts', async t => {
  const ctx = await buildApp(t)
  const { issuer } = ctx
  const accepted: Array<[string, string]> = [
    ['RS256, ScaleKit `scopes` array, aud array', ctx.token],
    ['ES256', await issuer.token({ key: issuer.keys[1] as SigningKey })],
    ['RFC 8693 `scope` string', await issuer.token({ claims: { scopes: undefined, scope: 'openid news:read profile' } })],
    ['`scp` array', await issuer.token({ claims: { scopes: undefined, scp: ['news:read'] } })],
    ['aud as a single string', await issuer.token({ claims: { aud: RESOURCE } })],
    ['aud as the res_ id only', await issuer.token({ claims: { aud: issuer.resourceId } })],
    ['issuer in the per-resource res_ form', await issuer.token({ claims: { iss: issuer.resourceIssuer } })],
    ['scheme in lower case (RFC 9110 §11.1: case-insensitive)', ctx.token]
  ]
  for (const [name, token] of accepted) {
    const scheme = name.startsWith('scheme') ? 'bearer' : 'Bearer'
    const res = await postInitialize(ctx.app, `${scheme} ${token}`)
    t.equal(res.statusCode, 200, name)
    t.type(res.headers['mcp-session-id'], 'string', `${name}: a session was opened`)
  }
})

t.test('refusals: status, WWW-Authenticate (RFC 6750 §3) and body', async t => {
  const ctx = await buildApp(t, {}, { skipOverride: true })
  const { issuer } = ctx
  const now = Math.floor(Date.now() / 1000)
  const tokens: string[] = [ctx.token]
  const remember = (token: string): string => { tokens.push(token); return token }

  t.test('no credentials: a challenge without an error code (RFC 6750 §3.1)', async t => {
    await assertDenied(t, ctx, undefined, { status: 401, scope: 'news:read', description: 'this resource needs a bearer access token (Authorization: Bearer <token>)' })
    await assertDenied(t, ctx, '', { status: 401, scope: 'news:read', description: 'this resource needs a bearer access token (Authorization: Bearer <token>)' })
  })

  t.test('another scheme counts as no credentials (RFC 6750 §3.1 "unsupported authentication method")', async t => {
    await assertDenied(t, ctx, 'Basic dGVzdC1jbGllbnQ6dGVzdC1zZWNyZXQ=', { status: 401, scope: 'news:read', description: 'only the Bearer authentication scheme is accepted' })
    await assertDenied(t, ctx, 'Bearer', { status: 401, scope: 'news:read', description: 'only the Bearer authentication scheme is accepted' })
  })

  const invalid: Array<[string, string | Promise<string>, string]> = [
    ['not a JWT', 'not-a-jwt', 'the access token is not a signed JWT'],
    ['empty bearer token', '', 'the access token is not a signed JWT'],
    ['three segments that do not decode', 'aaaa.bbbb.cccc', 'the access token is malformed'],
    ['expired', issuer.token({ expiresIn: -60 }), 'the access token has expired'],
    ['not yet valid (nbf beyond the 10 s tolerance)', issuer.token({ claims: { nbf: now + 120 } }), 'the access token is not valid yet'],
    ['no exp', issuer.token({ claims: { exp: undefined } }), 'the access token has no valid expiry'],
    ['wrong issuer', issuer.token({ claims: { iss: 'https://evil.example.com' } }), 'the access token was not issued by an accepted issuer'],
    ['wrong audience', issuer.token({ claims: { aud: ['https://other.example.com/mcp'] } }), 'the access token was not issued for this resource (audience mismatch)'],
    ['unknown kid', makeKey('RS256').then(key => issuer.token({ key })), 'no signing key of the authorization server matches the access token'],
    ['tampered payload', issuer.token().then(tok => {
      const [h, , s] = tok.split('.')
      return `${h as string}.${Buffer.from(JSON.stringify({ iss: issuer.url, sub: 'admin', aud: RESOURCE, exp: now + 600, scopes: ['news:read'] })).toString('base64url')}.${s as string}`
    }), 'the access token signature is invalid'],
    ['no subject and no client id', issuer.token({ claims: { sub: undefined, client_id: undefined } }), 'the access token names no subject']
  ]
  for (const [name, pending, description] of invalid) {
    t.test(name, async t => {
      const token = remember(await pending)
      await assertDenied(t, ctx, `Bearer ${token}`, { status: 401, error: 'invalid_token', description })
    })
  }

  t.test('alg "none" is never accepted', async t => {
    const payload = { iss: issuer.url, sub: 'mallory', aud: [RESOURCE], exp: now + 600, scopes: ['news:read'] }
    // Empty signature: not a signed JWT at all.
    await assertDenied(t, ctx, `Bearer ${craftToken({ alg: 'none', typ: 'JWT' }, payload)}`, { status: 401, error: 'invalid_token', description: 'the access token is not a signed JWT' })
    // A garbage signature does not make it one.
    await assertDenied(t, ctx, `Bearer ${craftToken({ alg: 'none' }, payload, 'c2lnbmF0dXJl')}`, { status: 401, error: 'invalid_token', description: 'the access token is signed with an algorithm that is not accepted' })
  })

  t.test('HS256 keyed with the public key (algorithm confusion) is refused', async t => {
    const key = issuer.keys[0] as SigningKey
    const payload = { iss: issuer.url, sub: 'mallory', aud: [RESOURCE], exp: now + 600, scopes: ['news:read'] }
    const pem = await exportSPKI(key.pair.publicKey)
    for (const secret of [pem, JSON.stringify(key.publicJwk)]) {
      const unsigned = craftToken({ alg: 'HS256', typ: 'JWT', kid: key.kid }, payload).slice(0, -1)
      const forged = `${unsigned}.${createHmac('sha256', secret).update(unsigned).digest('base64url')}`
      await assertDenied(t, ctx, `Bearer ${forged}`, { status: 401, error: 'invalid_token', description: 'the access token is signed with an algorithm that is not accepted' })
    }
  })

  t.test('a valid token without the scope: 403 insufficient_scope with the scope needed (RFC 6750 §3.1)', async t => {
    const token = remember(await issuer.token({ claims: { scopes: ['news:other'] } }))
    // The description quotes the scope; RFC 6750 §3 forbids `"` in the value, so it is single-quoted.
    await assertDenied(t, ctx, `Bearer ${token}`, { status: 403, error: 'insufficient_scope', scope: 'news:read', description: "the access token lacks the required scope 'news:read'" })
    const res = await postInitialize(ctx.app, `Bearer ${token}`)
    t.notMatch(res.headers['www-authenticate'], /\\/, 'no backslash escapes in the challenge')
  })

  t.test('scopes match exactly: no prefix, suffix or substring of news:read grants it', async t => {
    const near: Array<[string, Record<string, unknown>]> = [
      ['scopes [news:readonly]', { scopes: ['news:readonly'] }],
      ['scopes [xnews:read]', { scopes: ['xnews:read'] }],
      ['scope "news:read-all"', { scopes: undefined, scope: 'news:read-all' }],
      ['scope "news:read," (a comma is not a separator)', { scopes: undefined, scope: 'news:read,' }],
      ['scp [NEWS:READ] (scopes are case-sensitive, RFC 6749 §3.3)', { scopes: undefined, scp: ['NEWS:READ'] }],
      ['scopes ["news:read news:write"] (one array item is one scope)', { scopes: ['news:read news:write'] }]
    ]
    for (const [name, claims] of near) {
      const token = remember(await issuer.token({ claims }))
      t.test(name, async t => {
        await assertDenied(t, ctx, `Bearer ${token}`, { status: 403, error: 'insufficient_scope', scope: 'news:read', description: "the access token lacks the required scope 'news:read'" })
      })
    }
  })

  t.test('a 100 kB token is refused before any key lookup', async t => {
    const hits = issuer.jwksHits
    const fetches = jwksCacheOf(ctx.app).fetches
    const huge = remember(`${'a'.repeat(50_000)}.${'b'.repeat(50_000)}.c`)
    await assertDenied(t, ctx, `Bearer ${huge}`, { status: 401, error: 'invalid_token', description: 'the access token is too long' })
    t.equal(issuer.jwksHits, hits, 'the JWKS was not fetched')
    t.equal(jwksCacheOf(ctx.app).fetches, fetches)
  })

  t.test('two Authorization headers: 400 invalid_request (RFC 6750 §3.1)', async t => {
    const res = await requestOverHttp(ctx.app, '/mcp', {
      method: 'POST',
      headers: { ...MCP_HEADERS, authorization: [`Bearer ${ctx.token}`, 'Bearer other'] },
      body: JSON.stringify(initializeBody())
    })
    t.equal(res.status, 400)
    t.same(parseChallenge(res.headers['www-authenticate']).params, {
      error: 'invalid_request',
      error_description: 'the request carries more than one Authorization header',
      resource_metadata: METADATA_URL
    })
    t.same(JSON.parse(res.body), { error: 'invalid_request', error_description: 'the request carries more than one Authorization header' })
    const single = await requestOverHttp(ctx.app, '/mcp', {
      method: 'POST',
      headers: { ...MCP_HEADERS, authorization: `Bearer ${ctx.token}` },
      body: JSON.stringify(initializeBody())
    })
    t.equal(single.status, 200, 'the same request with one header passes')
  })

  t.test('discovery and health stay public', async t => {
    for (const url of ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource', '/health', '/ready']) {
      const res = await ctx.app.inject({ url })
      t.equal(res.statusCode, 200, url)
      t.equal(res.headers['www-authenticate'], undefined, `${url}: no challenge`)
    }
  })

  t.test('every decision is logged with its reason, never a token or a secret', async t => {
    // A full tool call too, so that the upstream request (with the API key) is in the logs' reach.
    const session = await openSession(ctx)
    const call = await callTool(ctx, session, 'get_news_sentiment', { ticker: 'AAPL', limit: 1 })
    t.equal(call.statusCode, 200)
    t.ok(ctx.upstream.hits.length > 0, 'the upstream was called')
    const decisions = ctx.logs.map(line => JSON.parse(line) as { msg: string, auth?: { reason?: string, outcome: string } }).filter(l => l.msg === 'auth decision')
    const reasons = new Set(decisions.map(d => d.auth?.reason ?? d.auth?.outcome))
    for (const r of ['no_credentials', 'not_bearer', 'invalid_token', 'insufficient_scope', 'invalid_request', 'allowed']) t.ok(reasons.has(r), `a decision logged: ${r}`)
    const all = ctx.logs.join('\n')
    for (const token of tokens.filter(tok => tok.length > 20)) t.notOk(all.includes(token), 'no token in the logs')
    t.notOk(all.includes((ctx.token.split('.')[1] as string)), 'no token payload in the logs')
    t.notOk(all.includes('test-secret-never-logged'), 'no client secret in the logs')
    t.notOk(all.includes(API_KEY), 'no Alpha Vantage API key in the logs')
  })
})

t.test('a token without sub is the client acting for itself: subject is the client id', async t => {
  const ctx = await buildApp(t)
  const token = await ctx.issuer.token({ claims: { sub: undefined, client_id: 'skc_machine' } })
  const res = await postInitialize(ctx.app, `Bearer ${token}`)
  t.equal(res.statusCode, 200)
  const allowed = ctx.logs.map(line => JSON.parse(line) as { auth?: { outcome: string, subject: string, client: string } }).find(l => l.auth?.outcome === 'allowed')
  t.same(allowed?.auth, { outcome: 'allowed', subject: 'skc_machine', client: 'skc_machine' })
  const azp = await ctx.issuer.token({ claims: { sub: '', client_id: undefined, azp: 'skc_azp' } })
  t.equal((await postInitialize(ctx.app, `Bearer ${azp}`)).statusCode, 200, 'an empty sub falls back to azp')
})

t.test('token cache', async t => {
  t.test('a verified token is not verified again while cached', async t => {
    const ctx = await buildApp(t, {}, { skipOverride: true })
    const verifier = ctx.app.accessTokenVerifier
    const before = verifier.verifications
    t.equal((await postInitialize(ctx.app, `Bearer ${ctx.token}`)).statusCode, 200)
    t.equal((await postInitialize(ctx.app, `Bearer ${ctx.token}`)).statusCode, 200)
    t.equal(verifier.verifications, before + 1, 'one signature check for two requests')
    verifier.clearCache()
    t.equal((await postInitialize(ctx.app, `Bearer ${ctx.token}`)).statusCode, 200)
    t.equal(verifier.verifications, before + 2, 'clearCache() forgets it')
  })

  t.test('the cache holds AUTH_TOKEN_CACHE_SIZE tokens, dropping the oldest', async t => {
    const ctx = await buildApp(t, { AUTH_TOKEN_CACHE_SIZE: '1' }, { skipOverride: true })
    const verifier = ctx.app.accessTokenVerifier
    const second = await ctx.issuer.token()
    const before = verifier.verifications
    for (const token of [ctx.token, second, second]) t.equal((await postInitialize(ctx.app, `Bearer ${token}`)).statusCode, 200)
    t.equal(verifier.verifications, before + 2, 'the second token is served from the cache')
    t.equal((await postInitialize(ctx.app, `Bearer ${ctx.token}`)).statusCode, 200)
    t.equal(verifier.verifications, before + 3, 'the first was evicted, so verified again')
  })

  t.test('AUTH_TOKEN_CACHE_SIZE=0 verifies every request', async t => {
    const ctx = await buildApp(t, { AUTH_TOKEN_CACHE_SIZE: '0' }, { skipOverride: true })
    const before = ctx.app.accessTokenVerifier.verifications
    for (let i = 0; i < 3; i++) t.equal((await postInitialize(ctx.app, `Bearer ${ctx.token}`)).statusCode, 200)
    t.equal(ctx.app.accessTokenVerifier.verifications, before + 3)
  })

  t.test('a cached token is refused once it expires', async t => {
    const ctx = await buildApp(t, { AUTH_CLOCK_TOLERANCE_SEC: '0' })
    const exp = Math.floor(Date.now() / 1000) + 2
    const token = await ctx.issuer.token({ claims: { exp } })
    t.equal((await postInitialize(ctx.app, `Bearer ${token}`)).statusCode, 200)
    t.equal((await postInitialize(ctx.app, `Bearer ${token}`)).statusCode, 200, 'served again (from the cache)')
    await sleep(exp * 1000 - Date.now() + 20)
    await assertDenied(t, ctx, `Bearer ${token}`, { status: 401, error: 'invalid_token', description: 'the access token has expired' })
  })

  t.test('the scope is checked on cached verifications too', async t => {
    const ctx = await buildApp(t)
    const token = await ctx.issuer.token({ claims: { scopes: ['other'] } })
    t.equal((await postInitialize(ctx.app, `Bearer ${token}`)).statusCode, 403)
    t.equal((await postInitialize(ctx.app, `Bearer ${token}`)).statusCode, 403)
  })
})

t.test('bearerChallenge', async t => {
  t.equal(bearerChallenge({}), 'Bearer')
  t.equal(bearerChallenge({ error: 'invalid_token', scope: undefined }), 'Bearer error="invalid_token"')
  // RFC 6750 §3: %x20-21 / %x23-5B / %x5D-7E only.
  t.equal(bearerChallenge({ error_description: 'a "b" \\c\r\nd é' }), 'Bearer error_description="a \'b\' cd "')
})

t.test('plugin options are validated at registration', async t => {
  const good: AuthPluginOptions = { issuers: ['https://idp.example.com'], audiences: ['https://news.example.com/mcp'], jwks: { keys: [] }, resourceMetadataUrl: METADATA_URL }
  const cases: Array<[Partial<AuthPluginOptions> & Record<string, unknown>, string]> = [
    [{ issuers: [] }, 'mcp-auth: "issuers" must list at least one issuer'],
    [{ issuers: 'https://idp.example.com' as unknown as string[] }, 'mcp-auth: "issuers" must list at least one issuer'],
    [{ audiences: [] }, 'mcp-auth: "audiences" must list at least one audience'],
    [{ jwksUri: 'https://idp.example.com/keys' }, 'mcp-auth: give at most one of "jwksUri" and "jwks"'],
    [{ jwks: undefined }, 'mcp-auth: give "jwksUri", "jwks" or "introspection": where tokens are checked'],
    [{ introspection: { endpoint: 'idp.example.com/introspect', clientId: 'rs', clientSecret: 's' } }, 'mcp-auth: "introspection" needs an http(s) "endpoint", a "clientId" and a "clientSecret"'],
    [{ introspection: { endpoint: 'https://idp.example.com/introspect', clientId: '', clientSecret: 's' } }, 'mcp-auth: "introspection" needs an http(s) "endpoint", a "clientId" and a "clientSecret"'],
    [{ introspection: { endpoint: 'https://idp.example.com/introspect', clientId: 'rs' } as never }, 'mcp-auth: "introspection" needs an http(s) "endpoint", a "clientId" and a "clientSecret"'],
    [{ introspection: null as never }, 'mcp-auth: "introspection" needs an http(s) "endpoint", a "clientId" and a "clientSecret"'],
    [{ requiredScopes: 'news:read' as unknown as string[] }, 'mcp-auth: "requiredScopes" must be an array of scope tokens (RFC 6749 §3.3)'],
    [{ requiredScopes: ['news read'] }, 'mcp-auth: "requiredScopes" must be an array of scope tokens (RFC 6749 §3.3)'],
    [{ resourceMetadataUrl: undefined }, 'mcp-auth: "resourceMetadataUrl" is required'],
    [{ algorithms: ['RS256', 'HS256'] }, 'mcp-auth: algorithm HS256 is not allowed: only asymmetric algorithms verify tokens from a third party'],
    [{ algorithms: ['none'] }, 'mcp-auth: algorithm none is not allowed: only asymmetric algorithms verify tokens from a third party']
  ]
  for (const [change, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    app.register(authPlugin, { ...good, ...change } as AuthPluginOptions)
    await t.rejects(async () => { await app.ready() }, { message }, message)
  }

  t.test('with in-memory keys and the defaults, a token for the right audience passes', async t => {
    const key = await makeKey('ES256')
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(authPlugin, { ...good, jwks: { keys: [key.publicJwk] } })
    app.get('/p', { onRequest: app.authenticate }, async request => request.auth)
    await app.ready()
    t.equal(app.jwksCache, null)
    t.same(app.requiredScopes, [], 'no scope is required by default: the plugin knows nothing of the product')
    const { SignJWT } = await import('jose')
    const token = await new SignJWT({ sub: 'u1', jti: randomBytes(4).toString('hex') })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid }).setIssuer('https://idp.example.com').setAudience('https://news.example.com/mcp')
      .setExpirationTime('5m').sign(key.pair.privateKey)
    const res = await app.inject({ url: '/p', headers: { authorization: `Bearer ${token}` } })
    t.equal(res.statusCode, 200)
    t.equal(res.json().subject, 'u1')
  })
})
