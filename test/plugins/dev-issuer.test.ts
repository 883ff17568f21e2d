import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import devIssuer, { type DevIssuerOptions } from '../../plugins/dev-issuer.js'
import { buildApp } from '../helpers/build-app.js'
import { captureStdout, postInitialize } from '../helpers/auth-requests.js'

// buildApp points the app at a ScaleKit-like issuer; blanking those variables
// (empty counts as unset) leaves the empty environment of a first `npm start`.
const NO_ISSUER = {
  SCALEKIT_ENVIRONMENT_URL: '',
  SCALEKIT_CLIENT_ID: '',
  SCALEKIT_CLIENT_SECRET: '',
  SCALEKIT_AUTHORIZATION_SERVERS: '',
  SCALEKIT_AUDIENCE_NAME: '',
  SCALEKIT_RESOURCE_METADATA_URL: '',
  SCALEKIT_RESOUCE_NAME: '',
  SCALEKIT_RESOUCE_DOCS_URL: ''
}
const DEV_ISSUER = 'http://localhost:10000/dev-issuer'
const RESOURCE = 'http://localhost:10000/mcp'
const JWT = /^[\w-]+\.[\w-]+\.[\w-]+$/
const FORM = { 'content-type': 'application/x-www-form-urlencoded' }

function claimsOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>
}

function basic (id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`
}

/** The plugin alone in a Fastify app with its logs captured. */
async function standalone (t: Test, opts: Partial<DevIssuerOptions> = {}): Promise<{ app: FastifyInstance, logs: string[] }> {
  const logs: string[] = []
  const app = Fastify({ logger: { level: 'info', stream: { write: (line: string) => { logs.push(line) } } } })
  t.teardown(() => app.close())
  await app.register(devIssuer, { issuer: DEV_ISSUER, audience: [RESOURCE], scopes: ['news:read'], ...opts })
  return { app, logs }
}

t.test('with nothing configured, the development issuer protects the server', async t => {
  const ctx = await buildApp(t, NO_ISSUER, { skipOverride: true })
  const { app } = ctx
  t.equal(app.config.auth.mode, 'development')
  t.equal(app.jwksCache, null, 'no remote JWKS')

  // The banner waits for the listen address: it is printed on loopback only.
  const stdout = captureStdout(t)
  await app.listen({ host: '127.0.0.1', port: 0 })
  stdout.restore()
  const banner = stdout.written.join('')
  t.match(banner, 'DEVELOPMENT MODE: NOT FOR PRODUCTION')
  t.match(banner, ` Issuer: ${DEV_ISSUER} (ephemeral key, valid until restart)`)
  t.match(banner, ` MCP endpoint: ${RESOURCE}`)
  t.match(banner, ` Client credentials: dev-client / ${app.devIssuer.clientSecret}`)
  t.match(banner, ' Bearer token (12 h, scope news:read):')
  const printed = banner.split('\n').find(line => JWT.test(line)) as string
  t.type(printed, 'string', 'the banner carries a token')
  t.match(claimsOf(printed), { iss: DEV_ISSUER, aud: [RESOURCE, 'res_dev'], scopes: ['news:read'], sub: 'dev-user', client_id: 'dev-client', jti: String }, "ScaleKit's shape")
  t.equal((await postInitialize(app, `Bearer ${printed}`)).statusCode, 200, 'the printed token works')
  t.ok(ctx.logs.some(line => line.includes('DEVELOPMENT ISSUER ACTIVE')), 'a warning in the logs too')
  t.notOk(ctx.logs.some(line => line.includes(printed) || line.includes(app.devIssuer.clientSecret)), 'token and secret are on stdout only, never in a log line')
  t.equal(app.devIssuer.serving, true)

  t.equal((await postInitialize(app, `Bearer ${await app.devIssuer.mintAccessToken({ scopes: [], scope: '' })}`)).statusCode, 403, 'minted without the scope')
  t.equal((await postInitialize(app, `Bearer ${await app.devIssuer.mintAccessToken({ ttlSec: -60 })}`)).statusCode, 401, 'minted already expired')
  t.equal((await postInitialize(app, `Bearer ${await app.devIssuer.mintAccessToken({ aud: ['http://localhost:10000/other', 'res_other'] })}`)).statusCode, 401, 'a token for another resource is refused')
  t.equal((await postInitialize(app, `Bearer ${ctx.token}`)).statusCode, 401, 'a token from another issuer is refused')

  const jwks = await app.inject({ url: '/dev-issuer/jwks' })
  t.equal(jwks.statusCode, 200)
  t.same(jwks.json().keys.map((k: { kid: string }) => k.kid), app.devIssuer.jwks.keys.map(k => k.kid), 'oidc-provider publishes the key the auth plugin trusts')
  t.notOk('d' in jwks.json().keys[0], 'public key only')

  const metadata = (await app.inject({ url: '/.well-known/oauth-protected-resource/mcp' })).json()
  t.same(metadata.authorization_servers, [DEV_ISSUER])
  t.equal((await app.inject({ url: '/ready' })).statusCode, 200, 'ready without any fetch')
})

t.test('RFC 8414 metadata where MCP clients look for it, and the client-credentials grant', async t => {
  const ctx = await buildApp(t, NO_ISSUER, { skipOverride: true })
  const { app } = ctx
  const { clientId, clientSecret } = app.devIssuer

  // The MCP SDK's discovery order for an issuer with a path (client/auth.js
  // buildDiscoveryUrls): RFC 8414 §3.1 path insertion, then OIDC with path
  // insertion, then OIDC appended to the path.
  for (const url of ['/.well-known/oauth-authorization-server/dev-issuer', '/.well-known/openid-configuration/dev-issuer', '/dev-issuer/.well-known/openid-configuration']) {
    const res = await app.inject({ url, headers: { host: '127.0.0.1:9', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' } })
    t.equal(res.statusCode, 200, url)
    t.match(res.json(), {
      issuer: DEV_ISSUER,
      authorization_endpoint: `${DEV_ISSUER}/auth`,
      token_endpoint: `${DEV_ISSUER}/token`,
      registration_endpoint: `${DEV_ISSUER}/reg`,
      jwks_uri: `${DEV_ISSUER}/jwks`,
      code_challenge_methods_supported: ['S256'],
      response_types_supported: ['code']
    }, `${url}: endpoints on the issuer's origin, whatever Host and X-Forwarded-* say`)
    t.same([...res.json().grant_types_supported].sort(), ['authorization_code', 'client_credentials', 'refresh_token'])
  }

  const token = async (form: Record<string, string>, headers: Record<string, string> = {}): Promise<{ statusCode: number, body: Record<string, unknown> }> => {
    const res = await app.inject({ method: 'POST', url: '/dev-issuer/token', headers: { ...FORM, ...headers }, payload: new URLSearchParams(form).toString() })
    return { statusCode: res.statusCode, body: res.json() }
  }
  const granted = await token({ grant_type: 'client_credentials', resource: RESOURCE, scope: 'news:read' }, { authorization: basic(clientId, clientSecret) })
  t.equal(granted.statusCode, 200)
  t.match(granted.body, { token_type: 'Bearer', expires_in: 3600, scope: 'news:read' })
  const accessToken = String(granted.body.access_token)
  t.match(claimsOf(accessToken), { iss: DEV_ISSUER, aud: [RESOURCE, 'res_dev'], scopes: ['news:read'], sub: clientId, client_id: clientId, jti: String })
  t.equal((await postInitialize(app, `Bearer ${accessToken}`)).statusCode, 200, 'the token opens a session')

  // What the MCP SDK's ClientCredentialsProvider sends by default: neither resource nor scope.
  const bare = await token({ grant_type: 'client_credentials' }, { authorization: basic(clientId, clientSecret) })
  t.equal(bare.statusCode, 200)
  t.equal(bare.body.scope, 'news:read', 'RFC 6749 §3.3: the default scope, and the response says so')
  t.match(claimsOf(String(bare.body.access_token)), { aud: [RESOURCE, 'res_dev'], scopes: ['news:read'] }, 'no resource: the MCP resource by default')
  t.equal((await postInitialize(app, `Bearer ${String(bare.body.access_token)}`)).statusCode, 200)

  // RFC 6749 §5.2 and RFC 8707 §2 errors.
  t.match(await token({ grant_type: 'client_credentials', scope: 'news:read' }, { authorization: basic(clientId, 'wrong') }), { statusCode: 401, body: { error: 'invalid_client' } })
  t.equal((await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, scope: 'news:read' })).statusCode, 200, 'client_secret_post works too')
  t.match(await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: `${clientSecret}x` }), { statusCode: 401, body: { error: 'invalid_client' } })
  t.match(await token({ grant_type: 'client_credentials' }, { authorization: 'Basic %%%' }), { statusCode: 400, body: { error: 'invalid_request' } })
  t.match(await token({ grant_type: 'client_credentials', resource: 'https://elsewhere.example/mcp' }, { authorization: basic(clientId, clientSecret) }), { statusCode: 400, body: { error: 'invalid_target' } }, 'no token for another resource')
  t.match(await token({ grant_type: 'password', username: 'a', password: 'b' }, { authorization: basic(clientId, clientSecret) }), { statusCode: 400, body: { error: 'unsupported_grant_type' } })
  const notForm = await app.inject({ method: 'POST', url: '/dev-issuer/token', headers: { 'content-type': 'application/json' }, payload: '{"grant_type":"client_credentials"}' })
  t.equal(notForm.statusCode, 400, 'a JSON body is no form')
  t.notOk(ctx.logs.some(line => line.includes(clientSecret) || line.includes(accessToken)), 'no secret or token in the logs')
})

t.test('a browser client (MCP Inspector in direct mode, on a loopback origin) may register and fetch tokens', async t => {
  const { app } = await buildApp(t, NO_ISSUER, { skipOverride: true })
  const origin = 'http://localhost:6274'
  for (const url of ['/dev-issuer/reg', '/dev-issuer/token']) {
    const preflight = await app.inject({ method: 'OPTIONS', url, headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } })
    t.equal(preflight.statusCode, 204, `preflight ${url}`)
    t.equal(preflight.headers['access-control-allow-origin'], origin)
  }
  const registered = await app.inject({ method: 'POST', url: '/dev-issuer/reg', headers: { origin, 'content-type': 'application/json' }, payload: { redirect_uris: [`${origin}/oauth/callback`], token_endpoint_auth_method: 'none', scope: 'news:read' } })
  t.equal(registered.statusCode, 201)
  t.equal(registered.headers['access-control-allow-origin'], origin, 'the CORS headers survive the hand-over to oidc-provider')
  const elsewhere = await app.inject({ method: 'POST', url: '/dev-issuer/reg', headers: { origin: 'https://evil.example', 'content-type': 'application/json' }, payload: { redirect_uris: ['https://evil.example/cb'] } })
  t.equal(elsewhere.headers['access-control-allow-origin'], undefined, 'another origin cannot read the answer')
})

t.test('client secrets are compared in constant time by oidc-provider', async t => {
  // Client authentication (lib/shared/client_auth.js) calls
  // Client#compareClientSecret, which is constantEquals(secret, given, 1000):
  // crypto.timingSafeEqual over both values padded to at least 1000 bytes, so
  // neither a secret's content nor its length shows in the timing. This test
  // pins that on upgrades.
  const require = createRequire(import.meta.url)
  const libDir = require.resolve('oidc-provider/package.json').replace(/package\.json$/, 'lib/')
  const clientModel = readFileSync(`${libDir}models/client.js`, 'utf8')
  t.match(clientModel, /compareClientSecret\(actual\) \{\s*return constantEquals\(this\.clientSecret, actual, 1000\);/)
  t.match(readFileSync(`${libDir}shared/client_auth.js`, 'utf8'), /await ctx\.oidc\.client\.compareClientSecret\(clientSecret\)/)
  t.match(readFileSync(`${libDir}helpers/constant_equals.js`, 'utf8'), /return timingSafeEqual\(paddedBuffer\(a, length\), paddedBuffer\(b, length\)\);/)
})

t.test('the token and registration endpoints are rate-limited per client', async t => {
  const { app } = await standalone(t, { announce: false, rateLimit: { max: 3, timeWindowMs: 60_000 } })
  const statuses: number[] = []
  for (let i = 0; i < 4; i++) {
    statuses.push((await app.inject({ method: 'POST', url: '/dev-issuer/token', headers: { ...FORM, authorization: basic('dev-client', 'guess') }, payload: 'grant_type=client_credentials' })).statusCode)
  }
  t.same(statuses, [401, 401, 401, 429], 'a fourth secret guess in the window is refused before any check')
  const limited = await app.inject({ method: 'POST', url: '/dev-issuer/token', headers: FORM, payload: 'grant_type=client_credentials' })
  t.match(limited.json(), { statusCode: 429, code: 'FST_DEV_ISSUER_RATE_LIMITED', message: /allows 3 token and registration requests per client per window/ })
  t.ok(limited.headers['retry-after'], 'Retry-After')
  const reg = async (): Promise<number> => (await app.inject({ method: 'POST', url: '/dev-issuer/reg', headers: { 'content-type': 'application/json' }, payload: { redirect_uris: ['http://127.0.0.1:1/cb'], token_endpoint_auth_method: 'none' } })).statusCode
  t.same([await reg(), await reg(), await reg(), await reg()], [201, 201, 201, 429], 'dynamic registration too')
  t.equal((await app.inject({ url: '/dev-issuer/jwks' })).statusCode, 200, 'the key set is not limited')
  const other = await app.inject({ method: 'POST', url: '/dev-issuer/token', remoteAddress: '127.0.0.2', headers: FORM, payload: 'grant_type=client_credentials' })
  t.equal(other.statusCode, 400, 'another client address has its own count')
})

t.test('listening off loopback, it refuses to serve and prints nothing, unless allowed (issue 8, point 9)', async t => {
  // Tests listen on 127.0.0.1 only: the bound addresses are what a container
  // (fastify-cli on 0.0.0.0) would report.
  const offLoopback = (app: FastifyInstance): void => {
    app.addresses = () => [{ address: '127.0.0.1', family: 'IPv4', port: 1 }, { address: '0.0.0.0', family: 'IPv4', port: 1 }]
  }

  t.test('refused by default', async t => {
    const { app, logs } = await standalone(t)
    offLoopback(app)
    const stdout = captureStdout(t)
    await app.listen({ host: '127.0.0.1', port: 0 })
    stdout.restore()
    t.same(stdout.written, [], 'no banner: no token, no secret in collected logs')
    t.equal(app.devIssuer.serving, false)
    t.ok(logs.some(line => line.includes('"level":50') && line.includes('DEVELOPMENT ISSUER REFUSED') && line.includes('0.0.0.0')), 'an error says why')
    for (const [method, url] of [['GET', '/.well-known/oauth-authorization-server/dev-issuer'], ['POST', '/dev-issuer/token'], ['GET', '/dev-issuer/auth?client_id=x'], ['GET', '/dev-issuer/interaction/abc'], ['POST', '/dev-issuer/interaction/abc/login']] as const) {
      const res = await app.inject({ method, url, headers: FORM, payload: method === 'POST' ? 'grant_type=client_credentials' : undefined })
      t.equal(res.statusCode, 403, `${method} ${url}`)
      t.match(res.json(), { error: 'access_denied', error_description: /loopback only.*DEV_ISSUER=on/ })
    }
  })

  t.test('DEV_ISSUER=on', async t => {
    const { app } = await standalone(t, { allowNonLoopback: true })
    offLoopback(app)
    const stdout = captureStdout(t)
    await app.listen({ host: '127.0.0.1', port: 0 })
    stdout.restore()
    t.match(stdout.written.join(''), 'DEVELOPMENT MODE: NOT FOR PRODUCTION')
    t.equal(app.devIssuer.serving, true)
    t.equal((await app.inject({ url: '/.well-known/oauth-authorization-server/dev-issuer' })).statusCode, 200)
  })

  t.test('an https issuer (DEV_ISSUER=on behind a TLS proxy) publishes https endpoints', async t => {
    const { app } = await standalone(t, { issuer: 'https://dev.example.com/dev-issuer', audience: ['https://dev.example.com/mcp'], allowNonLoopback: true, announce: false })
    const meta = (await app.inject({ url: '/.well-known/oauth-authorization-server/dev-issuer' })).json()
    t.match(meta, { issuer: 'https://dev.example.com/dev-issuer', token_endpoint: 'https://dev.example.com/dev-issuer/token' })
  })

  t.test('a Unix socket is local', async t => {
    const { app } = await standalone(t, { announce: false })
    app.addresses = () => ['/tmp/dev-issuer.sock' as unknown as ReturnType<FastifyInstance['addresses']>[number]]
    await app.listen({ host: '127.0.0.1', port: 0 })
    t.equal(app.devIssuer.serving, true)
  })
})

t.test('the plugin on its own', async t => {
  t.test('refuses production', async t => {
    const app = Fastify()
    t.teardown(() => app.close())
    app.register(devIssuer, { issuer: DEV_ISSUER, audience: [], scopes: [], production: true })
    await t.rejects(async () => { await app.ready() }, { message: 'dev-issuer: refused when NODE_ENV=production; configure a real issuer' })
  })

  t.test('refuses an issuer without a path: its routes would shadow the app', async t => {
    const app = Fastify()
    t.teardown(() => app.close())
    app.register(devIssuer, { issuer: 'http://127.0.0.1:9/', audience: [], scopes: [] })
    await t.rejects(async () => { await app.ready() }, { message: /^dev-issuer: "issuer" must have a path/ })
  })

  t.test('announce: false prints nothing', async t => {
    const { app } = await standalone(t, { announce: false })
    const stdout = captureStdout(t)
    await app.listen({ host: '127.0.0.1', port: 0 })
    stdout.restore()
    t.same(stdout.written, [])
  })

  t.test('the banner states the token lifetime and copes without an audience', async t => {
    const { app } = await standalone(t, { audience: [], scopes: ['a', 'b'], tokenTtlSec: 7200 })
    const stdout = captureStdout(t)
    await app.listen({ host: '127.0.0.1', port: 0 })
    stdout.restore()
    const banner = stdout.written.join('')
    t.match(banner, ' MCP endpoint: \n')
    t.match(banner, ' Bearer token (2 h, scope a b):')
    const payload = claimsOf(banner.split('\n').find(line => JWT.test(line)) as string) as { exp: number, iat: number, iss: string, aud: string[] }
    t.equal(payload.exp - payload.iat, 7200)
    t.equal(payload.iss, DEV_ISSUER)
    t.same(payload.aud, ['res_dev'])
  })

  t.test('authorization errors are JSON, never an HTML page echoing the request', async t => {
    const { app } = await standalone(t, { announce: false })
    const res = await app.inject({ url: '/dev-issuer/auth?client_id=%3Cscript%3E&response_type=code' })
    t.equal(res.statusCode, 400)
    t.match(res.headers['content-type'], /^application\/json/)
    t.match(res.json(), { error: 'invalid_client' })
  })

  t.test('PKCE with S256 is required; a client without a name or scope gets a sign-in page, then access_denied for want of a scope', async t => {
    const { app } = await standalone(t, { announce: false })
    t.equal((await app.inject({ url: '/dev-issuer' })).statusCode, 404, 'the issuer path itself is no endpoint')
    const registered = await app.inject({ method: 'POST', url: '/dev-issuer/reg', headers: { 'content-type': 'application/json' }, payload: { redirect_uris: ['http://127.0.0.1:1/cb'], token_endpoint_auth_method: 'none' } })
    t.equal(registered.statusCode, 201)
    const clientId = String(registered.json().client_id)
    const authorize = (extra: string): string => `/dev-issuer/auth?response_type=code&client_id=${clientId}&redirect_uri=http%3A%2F%2F127.0.0.1%3A1%2Fcb${extra}`
    const withoutPkce = await app.inject({ url: authorize('') })
    t.equal(withoutPkce.statusCode, 303, 'errors go back to the client (RFC 6749 §4.1.2.1)')
    t.match(new URL(String(withoutPkce.headers.location)).searchParams.get('error_description'), /requires PKCE/, 'PKCE is required')
    const plain = await app.inject({ url: authorize('&code_challenge=abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrs&code_challenge_method=plain') })
    t.equal(new URL(String(plain.headers.location)).searchParams.get('error'), 'invalid_request', 'the plain method is refused')

    const started = await app.inject({ url: authorize('&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256') })
    t.equal(started.statusCode, 303)
    const cookies = ([] as string[]).concat(started.headers['set-cookie'] ?? []).map(c => c.split(';')[0]).join('; ')
    const page = await app.inject({ url: String(started.headers.location), headers: { cookie: cookies } })
    t.equal(page.statusCode, 200)
    t.match(page.body, `<strong>${clientId}</strong> asks for <code>news:read</code>`, 'named by its id, with the scope this issuer grants')
    const signedIn = await app.inject({ method: 'POST', url: `${String(started.headers.location)}/login`, headers: { cookie: cookies } })
    t.equal(signedIn.statusCode, 303)
    const resumeCookies = ([] as string[]).concat(signedIn.headers['set-cookie'] ?? []).map(c => c.split(';')[0]).join('; ')
    const back = await app.inject({ url: new URL(String(signedIn.headers.location)).pathname, headers: { cookie: `${cookies}; ${resumeCookies}` } })
    t.equal(back.statusCode, 303)
    // Nothing asked, nothing to consent to: the client hears so at its redirect URI.
    t.equal(new URL(String(back.headers.location)).searchParams.get('error'), 'access_denied', 'no scope requested: no grant')
  })

  t.test('a sign-in page for an interaction that does not exist says to start again', async t => {
    const { app } = await standalone(t, { announce: false })
    for (const method of ['GET', 'POST'] as const) {
      const res = await app.inject({ method, url: `/dev-issuer/interaction/nope${method === 'POST' ? '/login' : ''}` })
      t.equal(res.statusCode, 400)
      t.match(res.json(), { error: 'invalid_request', error_description: /start again from your MCP client/ })
    }
  })
})
