import t from 'tap'
import Fastify from 'fastify'
import devIssuer from '../../plugins/dev-issuer.js'
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
const JWT = /^[\w-]+\.[\w-]+\.[\w-]+$/

t.test('with nothing configured, the development issuer protects the server', async t => {
  const stdout = captureStdout(t)
  const ctx = await buildApp(t, NO_ISSUER, { skipOverride: true })
  stdout.restore()
  const { app } = ctx
  t.equal(app.config.auth.mode, 'development')
  t.equal(app.jwksCache, null, 'no remote JWKS')

  const banner = stdout.written.join('')
  t.match(banner, 'DEVELOPMENT MODE: NOT FOR PRODUCTION')
  t.match(banner, ` Issuer: ${DEV_ISSUER} (ephemeral key, valid until restart)`)
  t.match(banner, ' MCP endpoint: http://localhost:10000/mcp')
  t.match(banner, ' Bearer token (12 h, scope news:read):')
  const printed = banner.split('\n').find(line => JWT.test(line))
  t.type(printed, 'string', 'the banner carries a token')
  t.equal((await postInitialize(app, `Bearer ${printed as string}`)).statusCode, 200, 'the printed token works')
  t.ok(ctx.logs.some(line => line.includes('DEVELOPMENT ISSUER ACTIVE')), 'a warning in the logs too')
  t.notOk(ctx.logs.some(line => line.includes(printed as string)), 'the token is on stdout only, never in a log line')

  t.equal((await postInitialize(app, `Bearer ${await app.devIssuer.mintAccessToken()}`)).statusCode, 200, 'a minted token works')
  t.equal((await postInitialize(app, `Bearer ${await app.devIssuer.mintAccessToken({ scopes: [], scope: '' })}`)).statusCode, 403, 'minted without the scope')
  t.equal((await postInitialize(app, `Bearer ${await app.devIssuer.mintAccessToken({ ttlSec: -60 })}`)).statusCode, 401, 'minted already expired')
  t.equal((await postInitialize(app, `Bearer ${ctx.token}`)).statusCode, 401, 'a token from another issuer is refused')

  const jwks = await app.inject({ url: '/dev-issuer/jwks' })
  t.equal(jwks.statusCode, 200)
  t.same(jwks.json(), app.devIssuer.jwks)
  t.equal(jwks.json().keys.length, 1)
  t.notOk('d' in jwks.json().keys[0], 'public key only')
  t.equal(app.devIssuer.issuer, DEV_ISSUER)

  const metadata = (await app.inject({ url: '/.well-known/oauth-protected-resource/mcp' })).json()
  t.same(metadata.authorization_servers, [DEV_ISSUER])
  t.equal((await app.inject({ url: '/ready' })).statusCode, 200, 'ready without any fetch')
})

t.test('the plugin on its own', async t => {
  t.test('refuses production', async t => {
    const app = Fastify()
    t.teardown(() => app.close())
    app.register(devIssuer, { issuer: DEV_ISSUER, audience: [], scopes: [], production: true })
    await t.rejects(async () => { await app.ready() }, { message: 'dev-issuer: refused when NODE_ENV=production; configure a real issuer' })
  })

  t.test('announce: false prints nothing; jwksPath moves the keys', async t => {
    const stdout = captureStdout(t)
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(devIssuer, { issuer: DEV_ISSUER, audience: ['x'], scopes: ['s'], announce: false, jwksPath: '/keys' })
    await app.ready()
    stdout.restore()
    t.same(stdout.written, [])
    t.same((await app.inject({ url: '/keys' })).json(), app.devIssuer.jwks)
    t.equal((await app.inject({ url: '/dev-issuer/jwks' })).statusCode, 404)
  })

  t.test('the banner states the token lifetime and copes without an audience', async t => {
    const stdout = captureStdout(t)
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(devIssuer, { issuer: DEV_ISSUER, audience: [], scopes: ['a', 'b'], tokenTtlSec: 7200 })
    await app.ready()
    stdout.restore()
    const banner = stdout.written.join('')
    t.match(banner, ' MCP endpoint: \n')
    t.match(banner, ' Bearer token (2 h, scope a b):')
    const token = banner.split('\n').find(line => JWT.test(line)) as string
    const payload = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()) as { exp: number, iat: number, iss: string }
    t.equal(payload.exp - payload.iat, 7200)
    t.equal(payload.iss, DEV_ISSUER)
  })
})

t.test('the development issuer is discoverable: RFC 8414 metadata and a client-credentials token endpoint', async t => {
  const stdout = captureStdout(t)
  const ctx = await buildApp(t, NO_ISSUER, { skipOverride: true })
  stdout.restore()
  const { app } = ctx
  const { clientId, clientSecret } = app.devIssuer
  t.match(stdout.written.join(''), `${clientId} / ${clientSecret}`, 'the banner gives the client credentials')

  // RFC 9728 → RFC 8414 §3.1: the issuer's path goes after the well-known prefix.
  const prm = (await app.inject({ url: '/.well-known/oauth-protected-resource/mcp' })).json()
  t.same(prm.authorization_servers, [DEV_ISSUER])
  const meta = (await app.inject({ url: '/.well-known/oauth-authorization-server/dev-issuer' })).json()
  t.match(meta, { issuer: DEV_ISSUER, token_endpoint: `${DEV_ISSUER}/token`, jwks_uri: 'http://localhost:10000/dev-issuer/jwks', grant_types_supported: ['client_credentials'] })

  const token = async (form: Record<string, string>, headers: Record<string, string> = {}): Promise<{ statusCode: number, body: Record<string, unknown> }> => {
    const res = await app.inject({ method: 'POST', url: '/dev-issuer/token', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, payload: new URLSearchParams(form).toString() })
    return { statusCode: res.statusCode, body: res.json() }
  }
  const basic = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`
  const granted = await token({ grant_type: 'client_credentials', resource: 'http://localhost:10000/mcp' }, { authorization: basic })
  t.equal(granted.statusCode, 200)
  t.match(granted.body, { token_type: 'Bearer', expires_in: 3600, scope: 'news:read' })
  t.equal((await postInitialize(app, `Bearer ${String(granted.body.access_token)}`)).statusCode, 200, 'the token opens a session')
  t.equal((await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret })).statusCode, 200, 'client_secret_post works too')

  // RFC 6749 §5.2 and RFC 8707 §2 errors.
  t.same(await token({ grant_type: 'password', client_id: clientId, client_secret: clientSecret }), { statusCode: 400, body: { error: 'unsupported_grant_type' } })
  t.same(await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: 'wrong' }), { statusCode: 401, body: { error: 'invalid_client' } })
  t.same(await token({ grant_type: 'client_credentials' }, { authorization: 'Basic %%%' }), { statusCode: 401, body: { error: 'invalid_client' } })
  t.same(await token({ grant_type: 'client_credentials' }, { authorization: `Basic ${Buffer.from('%E0%A4%A:x').toString('base64')}` }), { statusCode: 401, body: { error: 'invalid_client' } }, 'undecodable Basic credentials')
  t.same(await token({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret, resource: 'https://elsewhere.example/mcp' }), { statusCode: 400, body: { error: 'invalid_target' } })
  const authorize = await app.inject({ url: '/dev-issuer/authorize?response_type=code' })
  t.equal(authorize.statusCode, 400)
  t.equal(authorize.json().error, 'unsupported_response_type', 'no interactive login: it says what to use instead')
  const notForm = await app.inject({ method: 'POST', url: '/dev-issuer/token', headers: { 'content-type': 'application/json' }, payload: '{}' })
  t.same(notForm.json(), { error: 'unsupported_grant_type' }, 'a JSON body is no form')
})

t.test('an issuer at an origin root publishes its metadata at the bare well-known URL', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(devIssuer, { issuer: 'http://127.0.0.1:9', audience: ['http://127.0.0.1:9/mcp'], scopes: ['news:read'], announce: false })
  const meta = (await app.inject({ url: '/.well-known/oauth-authorization-server' })).json()
  t.match(meta, { issuer: 'http://127.0.0.1:9', token_endpoint: 'http://127.0.0.1:9/token', authorization_endpoint: 'http://127.0.0.1:9/authorize' })
  const res = await app.inject({ method: 'POST', url: '/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `grant_type=client_credentials&client_id=dev-client&client_secret=${app.devIssuer.clientSecret}` })
  t.equal(res.statusCode, 200)
})
