import t from 'tap'
import Fastify from 'fastify'
import configPlugin, { ConfigError, loadConfig, metadataUrlFor, serverTimeouts, ALPHA_VANTAGE_QUERY_URL, SUPPORTED_ALGORITHMS } from '../../plugins/config.js'
import { buildApp } from '../helpers/build-app.js'

// loadConfig only parses: none of these hosts is ever contacted.
const ENV_URL = 'https://acme.scalekit.dev'
const RES_ID = 'res_81234567890'
const SCALEKIT = {
  SCALEKIT_ENVIRONMENT_URL: ENV_URL,
  SCALEKIT_CLIENT_ID: 'skc_1',
  SCALEKIT_CLIENT_SECRET: 'shh',
  SCALEKIT_RESOURCE_METADATA_URL: 'https://news.example.com/.well-known/oauth-protected-resource/mcp',
  SCALEKIT_AUTHORIZATION_SERVERS: `${ENV_URL}/resources/${RES_ID}`,
  SCALEKIT_AUDIENCE_NAME: 'https://news.example.com/mcp'
}

/** The one message loadConfig fails with, or a failed assertion if it does not fail. */
function failure (env: Record<string, string>): string {
  try {
    loadConfig(env)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    return err.message
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`)
}

t.test('an empty environment is development mode on localhost with the demo key', async t => {
  const cfg = loadConfig({})
  t.equal(cfg.production, false)
  t.equal(cfg.port, 10000)
  t.equal(cfg.auth.mode, 'development')
  t.same(cfg.auth.issuers, [])
  t.equal(cfg.auth.jwksUri, undefined)
  t.equal(cfg.alphaVantage.apiKey, 'demo')
  t.equal(cfg.alphaVantage.usingDemoKey, true)
  t.equal(cfg.alphaVantage.baseUrl, ALPHA_VANTAGE_QUERY_URL)
  t.equal(cfg.resource.resource, 'http://localhost:10000/mcp')
  t.equal(cfg.resource.metadataUrl, 'http://localhost:10000/.well-known/oauth-protected-resource/mcp')
  t.same(cfg.resource.authorizationServers, [])
  t.same(cfg.auth.audiences, ['http://localhost:10000/mcp'])
  t.same(cfg.auth.requiredScopes, ['news:read'])
  t.same(cfg.resource.scopesSupported, ['news:read'])
  t.same(cfg.auth.algorithms, ['RS256', 'ES256'])
  t.same(cfg.mcp.allowedOrigins, [])
  t.equal(cfg.resource.resourceName, undefined)
  t.equal(cfg.resource.resourceDocumentation, undefined)
  t.equal(cfg.auth.jwksCooldownMs, 30_000)
  t.equal(cfg.mcp.sessionIdleTtlMs, 900_000)
  t.equal(cfg.mcp.maxBatch, 20)
  t.equal(cfg.mcp.maxBatchAnswerBytes, 4 * 1024 * 1024)
  t.same(cfg.http, { requestTimeoutMs: 30_000, headersTimeoutMs: 10_000 })
})

t.test('batch bounds and request timeouts are configurable', async t => {
  const cfg = loadConfig({ MCP_MAX_BATCH: '5', MCP_MAX_BATCH_ANSWER_BYTES: '65536', REQUEST_TIMEOUT_MS: '5000', HEADERS_TIMEOUT_MS: '5000' })
  t.equal(cfg.mcp.maxBatch, 5)
  t.equal(cfg.mcp.maxBatchAnswerBytes, 65536)
  t.same(cfg.http, { requestTimeoutMs: 5000, headersTimeoutMs: 5000 })
  // app.ts's server options read the same variables through serverTimeouts, before any plugin runs.
  t.same(serverTimeouts({ REQUEST_TIMEOUT_MS: ' 2000 ', HEADERS_TIMEOUT_MS: '' }), { requestTimeoutMs: 2000, headersTimeoutMs: 2000 }, 'the headers timeout follows a shorter request timeout')
  t.same(serverTimeouts({}), { requestTimeoutMs: 30_000, headersTimeoutMs: 10_000 })
  t.throws(() => serverTimeouts({ REQUEST_TIMEOUT_MS: '1s' }), { message: 'Invalid configuration: REQUEST_TIMEOUT_MS must be integer' })
})

t.test('PORT moves the default resource; empty values count as unset and values are trimmed', async t => {
  t.equal(loadConfig({ PORT: ' 8080 ' }).resource.resource, 'http://localhost:8080/mcp')
  const cfg = loadConfig({ PORT: '', ALPHA_VANTAGE_API_KEY: '  ', AUTH_REQUIRED_SCOPES: '' })
  t.equal(cfg.port, 10000)
  t.equal(cfg.alphaVantage.apiKey, 'demo')
  t.same(cfg.auth.requiredScopes, ['news:read'])
  const keyed = loadConfig({ ALPHA_VANTAGE_API_KEY: 'K123' })
  t.equal(keyed.alphaVantage.apiKey, 'K123')
  t.equal(keyed.alphaVantage.usingDemoKey, false)
})

t.test('the ScaleKit tutorial variables', async t => {
  for (const envUrl of [ENV_URL, `${ENV_URL}/`]) {
    t.test(`SCALEKIT_ENVIRONMENT_URL=${envUrl}`, async t => {
      const cfg = loadConfig({ ...SCALEKIT, SCALEKIT_ENVIRONMENT_URL: envUrl })
      t.equal(cfg.auth.mode, 'issuer')
      t.equal(cfg.auth.jwksUri, `${ENV_URL}/keys`)
      // ScaleKit signs with the environment URL or the per-resource form: both accepted.
      t.same(cfg.auth.issuers, [ENV_URL, `${ENV_URL}/resources/${RES_ID}`])
      t.same(cfg.auth.audiences, ['https://news.example.com/mcp', RES_ID])
      t.equal(cfg.resource.resource, 'https://news.example.com/mcp')
      t.equal(cfg.resource.metadataUrl, SCALEKIT.SCALEKIT_RESOURCE_METADATA_URL)
      t.same(cfg.resource.authorizationServers, [`${ENV_URL}/resources/${RES_ID}`])
      t.equal(cfg.auth.clientId, 'skc_1')
    })
  }

  t.test('several comma-separated audience names are all accepted', async t => {
    const cfg = loadConfig({ ...SCALEKIT, SCALEKIT_AUDIENCE_NAME: 'mcp-news, https://news.example.com/mcp' })
    t.equal(cfg.resource.resource, 'https://news.example.com/mcp', 'the first URL among them is the resource')
    t.same(cfg.auth.audiences, ['mcp-news', 'https://news.example.com/mcp', RES_ID])
  })

  t.test('the misspelt SCALEKIT_RESOUCE_* names of the tutorial', async t => {
    const cfg = loadConfig({ ...SCALEKIT, SCALEKIT_RESOUCE_NAME: 'News', SCALEKIT_RESOUCE_DOCS_URL: 'https://news.example.com/docs' })
    t.equal(cfg.resource.resourceName, 'News')
    t.equal(cfg.resource.resourceDocumentation, 'https://news.example.com/docs')
  })

  t.test('the correctly spelt names win over the misspelt ones', async t => {
    const cfg = loadConfig({
      ...SCALEKIT,
      SCALEKIT_RESOURCE_NAME: 'Right',
      SCALEKIT_RESOUCE_NAME: 'Wrong',
      SCALEKIT_RESOURCE_DOCS_URL: 'https://news.example.com/right',
      SCALEKIT_RESOUCE_DOCS_URL: 'https://news.example.com/wrong'
    })
    t.equal(cfg.resource.resourceName, 'Right')
    t.equal(cfg.resource.resourceDocumentation, 'https://news.example.com/right')
  })

  t.test('an authorization server without a res_ id adds no audience', async t => {
    const cfg = loadConfig({ ...SCALEKIT, SCALEKIT_AUTHORIZATION_SERVERS: `${ENV_URL}/` })
    t.same(cfg.auth.issuers, [ENV_URL])
    t.same(cfg.auth.audiences, ['https://news.example.com/mcp'])
  })

  t.test('without an audience name, the resource comes from the tutorial metadata URL', async t => {
    const cfg = loadConfig({ ...SCALEKIT, SCALEKIT_AUDIENCE_NAME: '' })
    t.equal(cfg.resource.resource, 'https://news.example.com/mcp')
    t.same(cfg.auth.audiences, ['https://news.example.com/mcp', RES_ID])
    const root = loadConfig({ ...SCALEKIT, SCALEKIT_AUDIENCE_NAME: '', SCALEKIT_RESOURCE_METADATA_URL: 'https://news.example.com/.well-known/oauth-protected-resource' })
    t.equal(root.resource.resource, 'https://news.example.com/')
    const elsewhere = loadConfig({ ...SCALEKIT, SCALEKIT_AUDIENCE_NAME: '', SCALEKIT_RESOURCE_METADATA_URL: 'https://news.example.com/meta.json' })
    t.equal(elsewhere.resource.resource, 'http://localhost:10000/mcp', 'a metadata URL outside the well-known prefix names no resource')
    t.equal(elsewhere.resource.metadataUrl, 'https://news.example.com/meta.json')
  })

  t.test('a resource with a trailing slash is kept exactly as configured (RFC 9728 §3.3 compares it verbatim)', async t => {
    const cfg = loadConfig({ ...SCALEKIT, SCALEKIT_AUDIENCE_NAME: 'https://news.example.com/mcp/', SCALEKIT_RESOURCE_METADATA_URL: '' })
    t.equal(cfg.resource.resource, 'https://news.example.com/mcp/')
    t.equal(cfg.resource.metadataUrl, 'https://news.example.com/.well-known/oauth-protected-resource/mcp/')
  })
})

t.test('METADATA_JSON_RESPONSE: the dashboard document is parsed and published', async t => {
  const metadata = {
    resource: 'https://api.example.com/news/mcp',
    authorization_servers: [`${ENV_URL}/resources/res_777`],
    scopes_supported: ['news:read', 'news:write'],
    resource_name: 'From the dashboard',
    resource_documentation: 'https://api.example.com/docs',
    bearer_methods_supported: ['header'],
    x_extra: 1
  }
  const cfg = loadConfig({ SCALEKIT_ENVIRONMENT_URL: ENV_URL, METADATA_JSON_RESPONSE: JSON.stringify(metadata) })
  t.equal(cfg.resource.resource, metadata.resource)
  t.equal(cfg.resource.metadataUrl, 'https://api.example.com/.well-known/oauth-protected-resource/news/mcp')
  t.same(cfg.resource.authorizationServers, metadata.authorization_servers)
  t.same(cfg.resource.scopesSupported, metadata.scopes_supported)
  t.same(cfg.auth.requiredScopes, ['news:read'], 'published scopes do not change what is required')
  t.same(cfg.auth.issuers, [ENV_URL, `${ENV_URL}/resources/res_777`])
  t.same(cfg.auth.audiences, [metadata.resource, 'res_777'])
  t.equal(cfg.resource.resourceName, 'From the dashboard')
  t.equal(cfg.resource.resourceDocumentation, 'https://api.example.com/docs')
  t.same(cfg.resource.extra, { resource_name: 'From the dashboard', resource_documentation: 'https://api.example.com/docs', bearer_methods_supported: ['header'], x_extra: 1 })

  const overridden = loadConfig({ SCALEKIT_ENVIRONMENT_URL: ENV_URL, MCP_RESOURCE: 'https://mine.example.com/mcp', METADATA_JSON_RESPONSE: JSON.stringify(metadata) })
  t.equal(overridden.resource.resource, 'https://mine.example.com/mcp', 'MCP_RESOURCE comes first')

  const bare = loadConfig({ SCALEKIT_ENVIRONMENT_URL: ENV_URL, METADATA_JSON_RESPONSE: JSON.stringify({ resource_name: 42 }) })
  t.equal(bare.resource.resourceName, undefined, 'a non-string resource_name is not a name')
  t.same(bare.resource.authorizationServers, [ENV_URL], 'the environment is the authorization server by default')
})

t.test('explicit AUTH_* overrides', async t => {
  const cfg = loadConfig({
    AUTH_ISSUERS: 'https://idp.example.com, https://idp2.example.com',
    AUTH_JWKS_URI: 'https://idp.example.com/jwks.json',
    AUTH_AUDIENCES: 'api://news https://news.example.com/mcp',
    AUTH_REQUIRED_SCOPES: 'news:read news:premium',
    AUTH_ALGORITHMS: 'ES384,EdDSA',
    AUTH_CLOCK_TOLERANCE_SEC: '0',
    AUTH_JWKS_COOLDOWN_SEC: '2',
    MCP_RESOURCE: 'https://news.example.com/mcp'
  })
  t.equal(cfg.auth.mode, 'issuer')
  t.same(cfg.auth.issuers, ['https://idp.example.com', 'https://idp2.example.com'])
  t.equal(cfg.auth.jwksUri, 'https://idp.example.com/jwks.json')
  t.same(cfg.auth.audiences, ['api://news', 'https://news.example.com/mcp'])
  t.same(cfg.auth.requiredScopes, ['news:read', 'news:premium'])
  t.same(cfg.resource.scopesSupported, ['news:read', 'news:premium'])
  t.same(cfg.auth.algorithms, ['ES384', 'EdDSA'])
  t.equal(cfg.auth.clockToleranceSec, 0)
  t.equal(cfg.auth.jwksCooldownMs, 2000)
  t.same(cfg.resource.authorizationServers, ['https://idp.example.com', 'https://idp2.example.com'])

  const withScalekit = loadConfig({ ...SCALEKIT, AUTH_ISSUERS: 'https://only.example.com', AUTH_JWKS_URI: 'https://only.example.com/keys' })
  t.same(withScalekit.auth.issuers, ['https://only.example.com'], 'AUTH_ISSUERS replaces the derived issuers')
  t.equal(withScalekit.auth.jwksUri, 'https://only.example.com/keys')

  t.same(loadConfig({ ALLOWED_ORIGINS: 'https://app.example.com, http://localhost:6274' }).mcp.allowedOrigins, ['https://app.example.com', 'http://localhost:6274'])
  t.same(loadConfig({ ALLOWED_ORIGINS: '*' }).mcp.allowedOrigins, ['*'])
  t.equal(loadConfig({ MCP_STATELESS: 'true' }).mcp.stateless, true)
  t.equal(loadConfig({ NODE_ENV: 'production', ...SCALEKIT }).production, true)
})

t.test('every invalid setting fails with one message naming its variable', async t => {
  const cases: Array<[Record<string, string>, string]> = [
    [{ PORT: 'ten' }, 'Invalid configuration: PORT must be integer'],
    [{ PORT: '70000' }, 'Invalid configuration: PORT must be <= 65535'],
    [{ MCP_STATELESS: 'maybe' }, 'Invalid configuration: MCP_STATELESS must be boolean'],
    [{ AUTH_JWKS_TIMEOUT_MS: '5' }, 'Invalid configuration: AUTH_JWKS_TIMEOUT_MS must be >= 100'],
    [{ ALPHA_VANTAGE_BASE_URL: 'not a url' }, 'Invalid configuration: ALPHA_VANTAGE_BASE_URL must be an absolute http(s) URL (got "not a url")'],
    [{ ALPHA_VANTAGE_BASE_URL: 'ftp://example.com/query' }, 'Invalid configuration: ALPHA_VANTAGE_BASE_URL must be an http(s) URL (got "ftp://example.com/query")'],
    [{ SCALEKIT_ENVIRONMENT_URL: 'acme.scalekit.dev' }, 'Invalid configuration: SCALEKIT_ENVIRONMENT_URL must be an absolute http(s) URL (got "acme.scalekit.dev")'],
    [{ ...SCALEKIT, SCALEKIT_AUTHORIZATION_SERVERS: 'res_123' }, 'Invalid configuration: SCALEKIT_AUTHORIZATION_SERVERS must be an absolute http(s) URL (got "res_123")'],
    [{ ...SCALEKIT, SCALEKIT_RESOURCE_METADATA_URL: '/.well-known/oauth-protected-resource' }, 'Invalid configuration: SCALEKIT_RESOURCE_METADATA_URL must be an absolute http(s) URL (got "/.well-known/oauth-protected-resource")'],
    [{ ...SCALEKIT, SCALEKIT_RESOUCE_DOCS_URL: 'docs' }, 'Invalid configuration: SCALEKIT_RESOURCE_DOCS_URL must be an absolute http(s) URL (got "docs")'],
    [{ METADATA_JSON_RESPONSE: '{resource: x}' }, 'Invalid configuration: METADATA_JSON_RESPONSE must be a JSON object (it does not parse as JSON)'],
    [{ METADATA_JSON_RESPONSE: '["https://x.example.com"]' }, 'Invalid configuration: METADATA_JSON_RESPONSE must be a JSON object'],
    [{ METADATA_JSON_RESPONSE: 'null' }, 'Invalid configuration: METADATA_JSON_RESPONSE must be a JSON object'],
    [{ METADATA_JSON_RESPONSE: '{"authorization_servers":"https://x.example.com"}' }, 'Invalid configuration: METADATA_JSON_RESPONSE must list strings'],
    [{ METADATA_JSON_RESPONSE: '{"scopes_supported":[1]}' }, 'Invalid configuration: METADATA_JSON_RESPONSE must list strings'],
    // The resource identifier's errors name the variable it was taken from.
    [{ METADATA_JSON_RESPONSE: '{"resource":"news"}' }, 'Invalid configuration: METADATA_JSON_RESPONSE must be an absolute http(s) URL (got "news")'],
    [{ SCALEKIT_AUDIENCE_NAME: 'https://' }, 'Invalid configuration: SCALEKIT_AUDIENCE_NAME must be an absolute http(s) URL (got "https://")'],
    [{ MCP_RESOURCE: 'urn:news' }, 'Invalid configuration: MCP_RESOURCE must be an http(s) URL (got "urn:news")'],
    [{ MCP_RESOURCE: 'https://news.example.com/mcp#frag' }, 'Invalid configuration: MCP_RESOURCE must not give a resource identifier with a fragment (RFC 9728 §1.2)'],
    [{ METADATA_JSON_RESPONSE: '{"resource":"https://news.example.com/mcp#frag"}' }, 'Invalid configuration: METADATA_JSON_RESPONSE must not give a resource identifier with a fragment (RFC 9728 §1.2)'],
    [{ ...SCALEKIT, AUTH_ALGORITHMS: 'RS256,HS256' }, `Invalid configuration: AUTH_ALGORITHMS lists "HS256"; allowed: ${SUPPORTED_ALGORITHMS.join(', ')}`],
    [{ ...SCALEKIT, AUTH_ALGORITHMS: 'none' }, `Invalid configuration: AUTH_ALGORITHMS lists "none"; allowed: ${SUPPORTED_ALGORITHMS.join(', ')}`],
    [{ ...SCALEKIT, AUTH_ALGORITHMS: ',' }, 'Invalid configuration: AUTH_ALGORITHMS must list at least one algorithm'],
    [{ ALLOWED_ORIGINS: 'https://app.example.com/path' }, 'Invalid configuration: ALLOWED_ORIGINS lists "https://app.example.com/path", which is not an origin (scheme://host[:port], no path)'],
    [{ ALLOWED_ORIGINS: 'app.example.com' }, 'Invalid configuration: ALLOWED_ORIGINS must be an absolute http(s) URL (got "app.example.com")'],
    [{ AUTH_ISSUERS: 'https://idp.example.com' }, 'Invalid configuration: AUTH_JWKS_URI is required when AUTH_ISSUERS is set without SCALEKIT_ENVIRONMENT_URL'],
    [{ AUTH_JWKS_URI: 'https://idp.example.com/keys' }, 'Invalid configuration: AUTH_ISSUERS is required when AUTH_JWKS_URI is set without SCALEKIT_ENVIRONMENT_URL'],
    [{ AUTH_JWKS_URI: 'keys' }, 'Invalid configuration: AUTH_JWKS_URI must be an absolute http(s) URL (got "keys")'],
    [{ REDIS_URL: 'localhost:6379' }, 'Invalid configuration: REDIS_URL must be a redis:// or rediss:// URL (got the scheme "localhost:")'],
    [{ REDIS_URL: 'http://cache:6379' }, 'Invalid configuration: REDIS_URL must be a redis:// or rediss:// URL (got the scheme "http:")'],
    [{ REDIS_URL: 'not a url' }, 'Invalid configuration: REDIS_URL must be a redis:// or rediss:// URL (it does not parse as a URL)'],
    [{ REDIS_URL: 'redis://' }, 'Invalid configuration: REDIS_URL must name a host'],
    [{ REDIS_URL: 'redis://cache:6379/zero' }, 'Invalid configuration: REDIS_URL must end with a database number (/0 … /99) or nothing'],
    [{ REDIS_URL: 'redis://cache:6379', REDIS_KEY_PREFIX: 'has space' }, 'Invalid configuration: REDIS_KEY_PREFIX must match pattern "^[A-Za-z0-9_.:{}-]{1,64}$"'],
    [{ REDIS_URL: 'redis://cache:6379', REDIS_COMMAND_TIMEOUT_MS: '1' }, 'Invalid configuration: REDIS_COMMAND_TIMEOUT_MS must be >= 10'],
    [{ MCP_MAX_BATCH: '0' }, 'Invalid configuration: MCP_MAX_BATCH must be >= 1'],
    [{ MCP_MAX_BATCH_ANSWER_BYTES: '1000' }, 'Invalid configuration: MCP_MAX_BATCH_ANSWER_BYTES must be >= 65536'],
    [{ REQUEST_TIMEOUT_MS: '0' }, 'Invalid configuration: REQUEST_TIMEOUT_MS must be >= 1000'],
    [{ HEADERS_TIMEOUT_MS: 'soon' }, 'Invalid configuration: HEADERS_TIMEOUT_MS must be integer'],
    [{ REQUEST_TIMEOUT_MS: '5000', HEADERS_TIMEOUT_MS: '6000' }, 'Invalid configuration: HEADERS_TIMEOUT_MS must be <= REQUEST_TIMEOUT_MS (5000)'],
    [{ NODE_ENV: 'production' }, 'Invalid configuration: SCALEKIT_ENVIRONMENT_URL is required when NODE_ENV=production (the development issuer is refused in production; or set AUTH_ISSUERS and AUTH_JWKS_URI)'],
    [{ DEV_ISSUER: 'yes' }, 'Invalid configuration: DEV_ISSUER must be equal to one of the allowed values']
  ]
  for (const [env, message] of cases) t.equal(failure(env), message, JSON.stringify(env))
})

t.test('REDIS_URL switches to shared state; a password in it is never echoed in an error', async t => {
  t.equal(loadConfig({}).redis, undefined, 'no REDIS_URL: in memory')
  t.same(loadConfig({ REDIS_URL: 'rediss://app:s3cret@cache.example.com:6380/2', REDIS_KEY_PREFIX: 'news-prod:' }).redis, {
    url: 'rediss://app:s3cret@cache.example.com:6380/2',
    keyPrefix: 'news-prod:',
    connectTimeoutMs: 5000,
    commandTimeoutMs: 2000
  })
  t.equal(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }).redis?.keyPrefix, 'fnmcp:', 'default prefix')
  t.notMatch(failure({ REDIS_URL: 'http://app:s3cret@cache:6379' }), /s3cret/)
})

t.test('a ConfigError carries a code', async t => {
  const err = new ConfigError('PORT', 'is wrong')
  t.equal(err.code, 'FST_MCP_CONFIG_INVALID')
  t.equal(err.name, 'ConfigError')
})

t.test('metadataUrlFor inserts the well-known prefix before the path (RFC 9728 §3.1)', async t => {
  t.equal(metadataUrlFor('https://a.example.com/mcp'), 'https://a.example.com/.well-known/oauth-protected-resource/mcp')
  t.equal(metadataUrlFor('https://a.example.com/'), 'https://a.example.com/.well-known/oauth-protected-resource')
  t.equal(metadataUrlFor('https://a.example.com:8443/x/y'), 'https://a.example.com:8443/.well-known/oauth-protected-resource/x/y')
})

t.test('the config plugin decorates the instance, reading process.env by default', async t => {
  const saved = process.env.MCP_MAX_SESSIONS_PER_SUBJECT
  process.env.MCP_MAX_SESSIONS_PER_SUBJECT = '7'
  t.teardown(() => {
    if (saved === undefined) delete process.env.MCP_MAX_SESSIONS_PER_SUBJECT
    else process.env.MCP_MAX_SESSIONS_PER_SUBJECT = saved
  })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(configPlugin)
  await app.ready()
  t.equal(app.config.mcp.maxSessionsPerSubject, 7)

  const other = Fastify()
  t.teardown(() => other.close())
  await other.register(configPlugin, { env: { MCP_MAX_SESSIONS_PER_SUBJECT: '3' } })
  await other.ready()
  t.equal(other.config.mcp.maxSessionsPerSubject, 3, 'an explicit env is read instead of process.env')
})

t.test('the app refuses to boot on a bad setting, with the one-line message', async t => {
  await t.rejects(buildApp(t, { PORT: 'nope' }), { name: 'ConfigError', message: 'Invalid configuration: PORT must be integer' })
  await t.rejects(buildApp(t, { AUTH_ALGORITHMS: 'HS256' }), { message: /^Invalid configuration: AUTH_ALGORITHMS lists "HS256"/ })
  await t.rejects(buildApp(t, { NODE_ENV: 'production', SCALEKIT_ENVIRONMENT_URL: '' }), { message: /^Invalid configuration: SCALEKIT_ENVIRONMENT_URL is required when NODE_ENV=production/ })
})

t.test('the development issuer: never in production however spelt, loopback only unless DEV_ISSUER=on (issue 8, point 9)', async t => {
  const PRODUCTION_REFUSED = 'Invalid configuration: SCALEKIT_ENVIRONMENT_URL is required when NODE_ENV=production (the development issuer is refused in production; or set AUTH_ISSUERS and AUTH_JWKS_URI)'
  for (const spelling of ['production', 'Production', 'PRODUCTION', 'prod', 'Prod', ' production ']) {
    t.equal(failure({ NODE_ENV: spelling }), PRODUCTION_REFUSED, `NODE_ENV=${JSON.stringify(spelling)}`)
    t.equal(failure({ NODE_ENV: spelling, DEV_ISSUER: 'on' }), PRODUCTION_REFUSED, 'DEV_ISSUER=on does not override production')
    t.equal(loadConfig({ NODE_ENV: spelling, ...SCALEKIT }).production, true)
  }
  for (const spelling of ['development', 'test', 'productions', 'preprod']) t.equal(loadConfig({ NODE_ENV: spelling }).production, false, spelling)

  // Off loopback, a click-to-sign-in issuer would hand tokens to anyone who can reach it.
  for (const resource of ['https://news.example.com/mcp', 'http://0.0.0.0:10000/mcp', 'http://192.168.1.20:10000/mcp', 'http://[::]:10000/mcp', 'http://localhost.example.com/mcp']) {
    t.equal(failure({ MCP_RESOURCE: resource }), `Invalid configuration: MCP_RESOURCE is ${JSON.stringify(resource)}, not on loopback, and no issuer is configured: set SCALEKIT_ENVIRONMENT_URL (or AUTH_ISSUERS and AUTH_JWKS_URI), or DEV_ISSUER=on to run the development issuer there anyway`, resource)
    const forced = loadConfig({ MCP_RESOURCE: resource, DEV_ISSUER: 'on' })
    t.equal(forced.auth.mode, 'development')
    t.equal(forced.auth.devIssuerForced, true)
  }
  t.match(failure({ SCALEKIT_AUDIENCE_NAME: 'https://news.example.com/mcp' }), /^Invalid configuration: SCALEKIT_AUDIENCE_NAME is "https:\/\/news.example.com\/mcp", not on loopback/, 'the error names the variable the resource came from')
  for (const resource of ['http://localhost:10000/mcp', 'http://127.0.0.1:8080/mcp', 'http://127.1.2.3/mcp', 'http://[::1]:10000/mcp', 'http://LOCALHOST:1/mcp']) {
    t.equal(loadConfig({ MCP_RESOURCE: resource }).auth.devIssuerForced, false, `${resource} is loopback`)
  }
  t.equal(failure({ DEV_ISSUER: 'off' }), 'Invalid configuration: SCALEKIT_ENVIRONMENT_URL is required when DEV_ISSUER=off (or set AUTH_ISSUERS and AUTH_JWKS_URI)')
  t.equal(loadConfig({ DEV_ISSUER: 'off', ...SCALEKIT }).auth.mode, 'issuer', 'off with an issuer configured is just the issuer')
})
