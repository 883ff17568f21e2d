import t from 'tap'
import Fastify from 'fastify'
import protectedResourceMetadata, { metadataPaths, type ProtectedResourceMetadataOptions } from '../../plugins/protected-resource-metadata.js'
import { buildApp } from '../helpers/build-app.js'
import { parseChallenge, postInitialize } from '../helpers/auth-requests.js'

const PATHS = ['/.well-known/oauth-protected-resource/mcp', '/.well-known/oauth-protected-resource']

t.test('the RFC 9728 document at the path-suffixed and the root well-known URLs', async t => {
  const ctx = await buildApp(t)
  for (const url of PATHS) {
    const res = await ctx.app.inject({ url, headers: { origin: 'https://any-client.example' } })
    t.equal(res.statusCode, 200, url)
    t.match(res.headers['content-type'], /^application\/json/)
    t.equal(res.headers['cache-control'], 'public, max-age=300')
    // RFC 9728 §3: a client fetches this before it holds a token, from any origin.
    t.equal(res.headers['access-control-allow-origin'], '*')
    t.equal(res.headers['access-control-allow-credentials'], undefined)
    t.same(res.json(), {
      resource: 'http://localhost:10000/mcp',
      authorization_servers: [ctx.issuer.resourceIssuer],
      bearer_methods_supported: ['header'],
      scopes_supported: ['news:read'],
      resource_name: 'Finance news (test)',
      resource_documentation: 'http://localhost:10000/docs'
    }, url)
  }
  const preflight = await ctx.app.inject({
    method: 'OPTIONS',
    url: PATHS[0],
    headers: { origin: 'https://any-client.example', 'access-control-request-method': 'GET' }
  })
  t.equal(preflight.statusCode, 204)
  t.equal(preflight.headers['access-control-allow-origin'], '*')
  t.equal(preflight.headers['access-control-allow-credentials'], undefined)
})

t.test('a resource with a trailing slash is published exactly as configured', async t => {
  const resource = 'http://localhost:10000/mcp/'
  const ctx = await buildApp(t, { SCALEKIT_AUDIENCE_NAME: resource, SCALEKIT_RESOURCE_METADATA_URL: '' })
  // RFC 9728 §3.1: the well-known prefix goes before the resource's path, slash and all.
  const metadataUrl = 'http://localhost:10000/.well-known/oauth-protected-resource/mcp/'
  const challenge = parseChallenge((await postInitialize(ctx.app)).headers['www-authenticate'])
  t.equal(challenge.params.resource_metadata, metadataUrl)
  for (const url of [new URL(metadataUrl).pathname, ...PATHS]) {
    const res = await ctx.app.inject({ url })
    t.equal(res.statusCode, 200, url)
    // RFC 9728 §3.3: the client compares `resource` with the URL it used, character for character.
    t.equal(res.json().resource, resource, url)
  }
})

t.test('members from METADATA_JSON_RESPONSE are published as they are', async t => {
  const ctx = await buildApp(t, {
    SCALEKIT_RESOUCE_NAME: '',
    SCALEKIT_RESOUCE_DOCS_URL: '',
    METADATA_JSON_RESPONSE: JSON.stringify({
      resource: 'http://localhost:10000/mcp',
      authorization_servers: ['http://127.0.0.1:9/resources/res_1'],
      scopes_supported: ['news:read', 'news:admin'],
      resource_name: 'Dashboard name',
      resource_policy_uri: 'http://localhost:10000/policy'
    })
  })
  const doc = (await ctx.app.inject({ url: PATHS[0] })).json()
  t.equal(doc.resource_name, 'Dashboard name')
  t.equal(doc.resource_policy_uri, 'http://localhost:10000/policy')
  t.same(doc.scopes_supported, ['news:read', 'news:admin'])
  t.same(doc.authorization_servers, [ctx.issuer.resourceIssuer], 'SCALEKIT_AUTHORIZATION_SERVERS comes first')
  t.equal(doc.resource_documentation, 'http://localhost:10000/docs', 'unset, the documentation is this server\'s own /docs page')
})

t.test('the plugin on its own', async t => {
  const base: ProtectedResourceMetadataOptions = { resource: 'https://api.example.com/', authorizationServers: ['https://idp.example.com'], scopesSupported: [] }

  t.test('option validation', async t => {
    const cases: Array<[Partial<ProtectedResourceMetadataOptions>, string]> = [
      [{ resource: undefined }, 'protected-resource-metadata: "resource" must be an absolute http(s) URL'],
      [{ resource: '/mcp' }, 'protected-resource-metadata: "resource" must be an absolute http(s) URL'],
      [{ authorizationServers: [] }, 'protected-resource-metadata: "authorizationServers" must list at least one authorization server (RFC 9728 §2; MCP authorization requires it)'],
      [{ authorizationServers: 'https://idp.example.com' as unknown as string[] }, 'protected-resource-metadata: "authorizationServers" must list at least one authorization server (RFC 9728 §2; MCP authorization requires it)']
    ]
    for (const [change, message] of cases) {
      const app = Fastify()
      t.teardown(() => app.close())
      app.register(protectedResourceMetadata, { ...base, ...change } as ProtectedResourceMetadataOptions)
      await t.rejects(async () => { await app.ready() }, { message })
    }
  })

  t.test('a root resource is served at the bare well-known path, and decorated', async t => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(protectedResourceMetadata, base)
    t.same(app.protectedResourceMetadata, { resource: 'https://api.example.com/', authorization_servers: ['https://idp.example.com'], bearer_methods_supported: ['header'], scopes_supported: [] })
    t.same((await app.inject({ url: '/.well-known/oauth-protected-resource' })).json(), app.protectedResourceMetadata)
  })

  t.test('without ignoreTrailingSlash, both slash variants are registered', async t => {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(protectedResourceMetadata, { ...base, resource: 'https://api.example.com/v1/mcp', paths: ['/meta/'] })
    for (const url of ['/.well-known/oauth-protected-resource/v1/mcp', '/.well-known/oauth-protected-resource/v1/mcp/', '/meta', '/meta/']) {
      t.equal((await app.inject({ url })).json().resource, 'https://api.example.com/v1/mcp', url)
    }
  })

  t.test('metadataPaths', async t => {
    t.same(metadataPaths('https://a.example.com/x/mcp'), ['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource/x/mcp'])
    t.same(metadataPaths('https://a.example.com', ['/m']), ['/.well-known/oauth-protected-resource', '/.well-known/oauth-protected-resource', '/m'])
  })
})
