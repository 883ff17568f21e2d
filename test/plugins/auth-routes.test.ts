import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import authPlugin, { type AuthPluginOptions } from '../../plugins/auth.js'
import metadataPlugin from '../../plugins/protected-resource-metadata.js'
import { LocalIssuer } from '../helpers/issuer.js'
import { parseChallenge } from '../helpers/auth-requests.js'

/**
 * The auth plugin on its own, protecting ordinary routes of an app that is
 * not an MCP server: per-route scopes, and opaque tokens by RFC 7662 introspection.
 */

const RESOURCE = 'https://api.example.com/'
const METADATA_URL = 'https://api.example.com/.well-known/oauth-protected-resource'
const issuer = await LocalIssuer.start()
issuer.audience = [RESOURCE]
t.teardown(() => issuer.close())

async function appWith (t: Test, options: Partial<AuthPluginOptions> = {}): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(authPlugin, {
    issuers: [issuer.url],
    audiences: [RESOURCE],
    jwks: { keys: issuer.keys.map(k => k.publicJwk) },
    resourceMetadataUrl: METADATA_URL,
    requiredScopes: ['api:read'],
    ...options
  })
  await app.register(metadataPlugin, { resource: RESOURCE, authorizationServers: [issuer.url], scopesSupported: ['openid'] })
  app.get('/public', async () => ({ open: true }))
  app.get('/hook', { onRequest: app.authenticate }, async request => ({ subject: request.auth?.subject }))
  app.get('/config', { config: { auth: true } }, async request => ({ subject: request.auth?.subject }))
  app.get('/reports', { config: { auth: { scopes: ['reports:read'] } } }, async request => ({ scopes: request.auth?.scopes }))
  app.post('/reports', { onRequest: app.requireScopes(['reports:write']) }, async () => ({ written: true }))
  return app
}

t.test('routes protected by hook, by config and by requireScopes, with the same RFC 6750 challenges', async t => {
  const app = await appWith(t)
  const read = await issuer.token({ claims: { aud: RESOURCE, scopes: ['api:read'] } })
  const reports = await issuer.token({ claims: { aud: RESOURCE, scopes: ['api:read', 'reports:read'] } })
  const get = async (url: string, token?: string, method: 'GET' | 'POST' = 'GET'): Promise<{ status: number, challenge: Record<string, string> | undefined, body: unknown }> => {
    const res = await app.inject({ method, url, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } })
    const header = res.headers['www-authenticate']
    return { status: res.statusCode, challenge: header === undefined ? undefined : parseChallenge(header).params, body: res.json() }
  }

  t.equal((await get('/public')).status, 200, 'a route that asks for nothing stays public')
  t.same(await get('/hook'), {
    status: 401,
    challenge: { resource_metadata: METADATA_URL, scope: 'api:read' },
    body: { error: 'invalid_request', error_description: 'this resource needs a bearer access token (Authorization: Bearer <token>)' }
  }, 'no token: 401 naming the scope the route needs')
  t.same((await get('/reports')).challenge, { resource_metadata: METADATA_URL, scope: 'api:read reports:read' }, 'a route with scopes of its own names them all')
  t.same(await get('/hook', read), { status: 200, challenge: undefined, body: { subject: 'user_123' } })
  t.same(await get('/config', read), { status: 200, challenge: undefined, body: { subject: 'user_123' } })
  t.same(await get('/reports', read), {
    status: 403,
    challenge: { error: 'insufficient_scope', error_description: "the access token lacks the required scope 'api:read reports:read'", resource_metadata: METADATA_URL, scope: 'api:read reports:read' },
    body: { error: 'insufficient_scope', error_description: "the access token lacks the required scope 'api:read reports:read'" }
  })
  t.same(await get('/reports', reports), { status: 200, challenge: undefined, body: { scopes: ['api:read', 'reports:read'] } })
  t.equal((await get('/reports', reports, 'POST')).status, 403, 'requireScopes: reports:write is missing')
  t.equal((await get('/hook', await issuer.token({ claims: { aud: RESOURCE, scopes: [] } }))).status, 403, 'requiredScopes apply to every protected route')

  const metadata = (await app.inject('/.well-known/oauth-protected-resource')).json() as { scopes_supported: string[] }
  t.same(metadata.scopes_supported, ['openid', 'api:read', 'reports:read', 'reports:write'], 'scopes_supported: the configured ones, then every scope in use')
})

t.test('without requiredScopes, any valid token passes authenticate', async t => {
  const app = await appWith(t, { requiredScopes: undefined })
  const res = await app.inject({ url: '/hook', headers: { authorization: `Bearer ${await issuer.token({ claims: { aud: RESOURCE, scopes: [] } })}` } })
  t.equal(res.statusCode, 200)
  t.equal(parseChallenge((await app.inject('/hook')).headers['www-authenticate']).params.scope, undefined, 'no scope in the challenge when none is needed')
})

t.test('config: { auth: {} } (no scopes listed) protects the route with the endpoint\'s scopes only', async t => {
  const app = await appWith(t)
  app.get('/empty', { config: { auth: {} } }, async request => ({ subject: request.auth?.subject }))
  t.equal((await app.inject('/empty')).statusCode, 401, 'no token: refused')
  const reader = await issuer.token({ claims: { aud: RESOURCE, sub: 'reader', scopes: ['api:read'] } })
  const res = await app.inject({ url: '/empty', headers: { authorization: `Bearer ${reader}` } })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { subject: 'reader' })
  const none = await issuer.token({ claims: { aud: RESOURCE, scopes: [] } })
  t.equal((await app.inject({ url: '/empty', headers: { authorization: `Bearer ${none}` } })).statusCode, 403, 'the endpoint\'s required scope still holds')
})

t.test('a route with config.auth and hooks of its own: authentication runs first', async t => {
  const app = await appWith(t)
  const seen: string[] = []
  const hook = async (request: { auth: unknown }): Promise<void> => { seen.push(request.auth === null ? 'no auth yet' : 'authenticated') }
  app.get('/one', { config: { auth: true }, onRequest: hook }, async () => ({}))
  app.get('/two', { config: { auth: { scopes: ['api:read'] } }, onRequest: [hook, hook] }, async () => ({}))
  const token = await issuer.token({ claims: { aud: RESOURCE, scopes: ['api:read'] } })
  t.equal((await app.inject({ url: '/one', headers: { authorization: `Bearer ${token}` } })).statusCode, 200)
  t.equal((await app.inject({ url: '/two', headers: { authorization: `Bearer ${token}` } })).statusCode, 200)
  t.equal((await app.inject({ url: '/two' })).statusCode, 401)
  t.same(seen, ['authenticated', 'authenticated', 'authenticated'], 'the route\'s own hooks see request.auth, and do not run for a refused request')
})

t.test('bad per-route scopes fail at registration', async t => {
  const app = await appWith(t)
  t.throws(() => app.get('/bad', { config: { auth: { scopes: ['has space'] } } }, async () => ({})), /^mcp-auth: route GET \/bad: config.auth.scopes must be an array of scope tokens$/)
  t.throws(() => app.requireScopes('reports' as unknown as string[]), /^mcp-auth: requireScopes\(\) takes an array of scope tokens/)
})

t.test('RFC 7662 introspection for opaque tokens', async t => {
  const introspection = { endpoint: issuer.introspectionEndpoint, ...issuer.resourceServer, timeoutMs: 500, cooldownMs: 200 }

  t.test('with keys too: JWTs are verified locally, opaque tokens introspected and cached', async t => {
    const app = await appWith(t, { introspection })
    const hits = issuer.introspectionHits
    const jwt = await issuer.token({ claims: { aud: RESOURCE, scopes: ['api:read'] } })
    t.equal((await app.inject({ url: '/hook', headers: { authorization: `Bearer ${jwt}` } })).statusCode, 200)
    t.equal(issuer.introspectionHits, hits, 'a JWT never goes to introspection')

    const opaque = issuer.opaqueToken({ scope: 'api:read reports:read', sub: 'opaque_user' })
    for (let i = 0; i < 3; i++) {
      const res = await app.inject({ url: '/reports', headers: { authorization: `Bearer ${opaque}` } })
      t.same([res.statusCode, res.json()], [200, { scopes: ['api:read', 'reports:read'] }])
    }
    t.equal(issuer.introspectionHits, hits + 1, 'introspected once, then served from the cache')
    t.equal(app.tokenIntrospector?.calls, 1)
    const refused = await app.inject({ url: '/reports', headers: { authorization: `Bearer ${issuer.opaqueToken({ scope: 'api:read' })}` } })
    t.equal(refused.statusCode, 403, 'scopes from the introspection answer are checked like a JWT\'s')
  })

  t.test('tokens the answer does not make good: inactive, expired, not for this resource, foreign issuer, no subject', async t => {
    const app = await appWith(t, { introspection, jwks: undefined })
    const now = Math.floor(Date.now() / 1000)
    const cases: Array<[string, string]> = [
      ['unknown to the issuer', 'no-such-token'],
      ['revoked', issuer.opaqueToken({ active: false })],
      ['expired', issuer.opaqueToken({ exp: now - 5 })],
      ['not valid yet', issuer.opaqueToken({ nbf: now + 600 })],
      ['for another resource', issuer.opaqueToken({ aud: 'https://other.example.com/' })],
      ['without an audience', issuer.opaqueToken({ aud: undefined })],
      ['from a foreign issuer', issuer.opaqueToken({ iss: 'https://evil.example.com' })],
      ['without subject or client', issuer.opaqueToken({ sub: undefined, client_id: undefined })],
      ['too long', 'x'.repeat(9000)],
      ['a JWT with no keys configured goes to introspection, which does not know it', await issuer.token({ claims: { aud: RESOURCE } })]
    ]
    for (const [what, token] of cases) {
      const res = await app.inject({ url: '/hook', headers: { authorization: `Bearer ${token}` } })
      t.equal(res.statusCode, 401, what)
      t.equal(parseChallenge(res.headers['www-authenticate']).params.error, 'invalid_token', what)
    }
    const hits = issuer.introspectionHits
    t.equal((await app.inject({ url: '/hook', headers: { authorization: 'Bearer no-such-token' } })).statusCode, 401)
    t.equal(issuer.introspectionHits, hits, 'an inactive answer is cached briefly too: one bad token cannot flood the issuer')
    const clientOnly = issuer.opaqueToken({ sub: undefined, scope: 'api:read', aud: RESOURCE })
    const res = await app.inject({ url: '/hook', headers: { authorization: `Bearer ${clientOnly}` } })
    t.same([res.statusCode, res.json()], [200, { subject: 'skc_test' }], 'a client-credentials token is its client')
  })

  t.test('an introspection endpoint that fails: 503 with Retry-After, never 401, and a cooldown', async t => {
    const app = await appWith(t, { introspection: { ...introspection, cacheSize: 0 }, jwks: undefined })
    const token = issuer.opaqueToken({ scope: 'api:read' })
    t.teardown(() => { issuer.introspectionMode = 'ok'; issuer.slowMs = 3000 })
    for (const mode of ['down', 'malformed', 'slow'] as const) {
      issuer.introspectionMode = mode
      issuer.slowMs = 1500
      const started = Date.now()
      const res = await app.inject({ url: '/hook', headers: { authorization: `Bearer ${token}` } })
      t.equal(res.statusCode, 503, mode)
      t.ok(Date.now() - started < 1400, `${mode}: answered within the deadline`)
      t.match(res.headers['retry-after'], /^\d+$/, mode)
      t.same(res.json(), { error: 'temporarily_unavailable', error_description: 'the authorization server\'s token introspection is unavailable' })
      const hits = issuer.introspectionHits
      t.equal((await app.inject({ url: '/hook', headers: { authorization: `Bearer ${token}` } })).statusCode, 503, `${mode}: refused during the cooldown`)
      t.equal(issuer.introspectionHits, hits, `${mode}: without asking the endpoint again`)
      await new Promise(resolve => setTimeout(resolve, 250))
    }
    issuer.introspectionMode = 'ok'
    t.equal((await app.inject({ url: '/hook', headers: { authorization: `Bearer ${token}` } })).statusCode, 200, 'served again once the endpoint is back')
  })

  t.test('wrong resource-server credentials are an outage of ours, not the caller\'s fault', async t => {
    const app = await appWith(t, { introspection: { ...introspection, clientSecret: 'wrong' }, jwks: undefined })
    const res = await app.inject({ url: '/hook', headers: { authorization: `Bearer ${issuer.opaqueToken()}` } })
    t.equal(res.statusCode, 503)
  })

  t.test('an answer expiring before the cache TTL is reused only until its exp', async t => {
    const app = await appWith(t, { introspection: { ...introspection, cacheSize: 1 }, jwks: undefined })
    const soon = issuer.opaqueToken({ scope: 'api:read', exp: Math.floor(Date.now() / 1000) + 1 })
    const other = issuer.opaqueToken({ scope: 'api:read' })
    t.equal((await app.inject({ url: '/hook', headers: { authorization: `Bearer ${soon}` } })).statusCode, 200)
    t.equal((await app.inject({ url: '/hook', headers: { authorization: `Bearer ${other}` } })).statusCode, 200, 'a second token evicts the first (cacheSize 1)')
    t.equal((await app.inject({ url: '/hook', headers: { authorization: `Bearer ${other}` } })).statusCode, 200)
    await new Promise(resolve => setTimeout(resolve, 1100))
    issuer.opaqueTokens.delete(soon)
    app.tokenIntrospector?.clearCache()
    t.equal((await app.inject({ url: '/hook', headers: { authorization: `Bearer ${soon}` } })).statusCode, 401, 'expired and forgotten')
  })
})
