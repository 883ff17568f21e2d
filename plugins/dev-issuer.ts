import fp from 'fastify-plugin'
import rateLimit from '@fastify/rate-limit'
import { randomBytes } from 'node:crypto'
import { SignJWT, exportJWK, generateKeyPair, type JSONWebKeySet, type JWK, type JWTPayload } from 'jose'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage } from 'node:http'
import type { default as OidcProvider, Configuration, KoaContextWithOIDC } from 'oidc-provider'
import { isLoopbackHostname } from '../lib/http/loopback-origin.js'

export interface DevIssuerOptions {
  /** The issuer identifier, with a path: e.g. `http://localhost:10000/dev-issuer`. Its routes live under that path. */
  issuer: string
  /** The resources (RFC 8707) it grants tokens for; the first one is the `aud` of the printed token. */
  audience: string[]
  /** Scopes it grants for those resources (consent is given on the user's behalf). */
  scopes: string[]
  /** The `res_…` id put beside the resource in `aud`, as ScaleKit does (default `res_dev`). */
  resourceId?: string
  /** Lifetime of the printed token (default 12 hours). */
  tokenTtlSec?: number
  /** Print the banner with a ready-to-paste token once the server listens on loopback (default true). */
  announce?: boolean
  /** Refuse to run at all: set when NODE_ENV=production. */
  production?: boolean
  /** Serve and print on a non-loopback listen address too (DEV_ISSUER=on). Default false. */
  allowNonLoopback?: boolean
  /** Token and registration requests per client IP per window (default 30 per minute). */
  rateLimit?: { max: number, timeWindowMs: number }
}

export interface DevIssuer {
  issuer: string
  /** The public half of the ephemeral signing key, as the auth plugin's key set. */
  jwks: JSONWebKeySet
  /** The pre-registered client-credentials client, and its secret (made at boot). */
  clientId: string
  clientSecret: string
  /** Signs a token of the same shape as the ones the endpoints issue (the printed token, tests). */
  mintAccessToken: (claims?: JWTPayload & { ttlSec?: number }) => Promise<string>
  /** False once the server turned out to listen off loopback without DEV_ISSUER=on: every endpoint answers 403. */
  readonly serving: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    devIssuer: DevIssuer
  }
}

const DEV_CLIENT_ID = 'dev-client'
const DEV_ACCOUNT = 'dev-user'
const ACCESS_TOKEN_TTL_SEC = 3600

function htmlEscape (value: string): string {
  return value.replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)
}

function signInPage (action: string, clientName: string, scopes: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Development sign-in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}
.banner{background:#b00020;color:#fff;padding:1rem;font-weight:bold;border-radius:4px}
button{font-size:1.1rem;padding:.6rem 1.4rem;margin-top:1rem}</style></head>
<body>
<div class="banner" role="alert">DEVELOPMENT ONLY: this sign-in accepts anyone. Configure a real issuer (ScaleKit) before you deploy.</div>
<h1>Sign in to the development issuer</h1>
<p><strong>${htmlEscape(clientName)}</strong> asks for <code>${htmlEscape(scopes)}</code>. Consent is given automatically.</p>
<form method="post" action="${htmlEscape(action)}"><button type="submit" autofocus>Sign in as ${DEV_ACCOUNT}</button></form>
</body></html>`
}

/**
 * A development authorization server: oidc-provider (OpenID certified) with an
 * ephemeral RS256 key made at boot, mounted under the issuer's path. It does
 * what MCP clients need for a real sign-in (authorization code with PKCE S256,
 * dynamic client registration RFC 7591, resource indicators RFC 8707, refresh
 * tokens) and client credentials for scripts; its access tokens are JWTs
 * shaped like ScaleKit's, verified by the auth plugin through `jwks`.
 *
 * Mounted by hijacking Fastify routes under the issuer path and handing the raw
 * request to `provider.callback()`: no extra dependency (@fastify/middie would
 * run a middleware hook on every request of the app, /mcp included), and the
 * body stays unread for oidc-provider's own bounded parser.
 */
async function devIssuerPlugin (fastify: FastifyInstance, opts: DevIssuerOptions): Promise<void> {
  if (opts.production === true) throw new Error('dev-issuer: refused when NODE_ENV=production; configure a real issuer')
  const issuerUrl = new URL(opts.issuer)
  const prefix = issuerUrl.pathname.replace(/\/$/, '')
  if (prefix === '') throw new Error('dev-issuer: "issuer" must have a path (e.g. http://localhost:10000/dev-issuer): its routes are mounted there')

  // Loaded here, not at the top: a configured (production) server never loads it.
  const { default: Provider, errors } = await import('oidc-provider')

  const kid = `dev-${randomBytes(6).toString('hex')}`
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true })
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }
  const jwks: JSONWebKeySet = { keys: [publicJwk] }
  const ttl = opts.tokenTtlSec ?? 12 * 3600
  const clientSecret = randomBytes(18).toString('base64url')
  const resourceId = opts.resourceId ?? 'res_dev'
  const scope = opts.scopes.join(' ')

  /** ScaleKit's shape: `aud` = [the resource, its res_… id], `scopes` as an array. */
  function scaleKitClaims (resource: string | undefined, scopes: string[]): JWTPayload {
    return { aud: resource === undefined ? [resourceId] : [resource, resourceId], scopes, scope: scopes.join(' ') }
  }

  async function mintAccessToken (claims: JWTPayload & { ttlSec?: number } = {}): Promise<string> {
    const { ttlSec = ttl, ...rest } = claims
    const now = Math.floor(Date.now() / 1000)
    return await new SignJWT({
      ...scaleKitClaims(opts.audience[0], opts.scopes),
      sub: DEV_ACCOUNT,
      client_id: DEV_CLIENT_ID,
      jti: randomBytes(12).toString('base64url'),
      iat: now,
      exp: now + ttlSec,
      ...rest
    }).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).setIssuer(opts.issuer).sign(privateKey)
  }

  const configuration: Configuration = {
    jwks: { keys: [{ ...(await exportJWK(privateKey)), kid, alg: 'RS256', use: 'sig' }] } as Configuration['jwks'],
    clients: [{
      client_id: DEV_CLIENT_ID,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: []
    }],
    // The resource's scopes are listed too: MCP clients put them in their
    // registration (RFC 7591 `scope`), which must name scopes the server knows,
    // and read `scopes_supported` from the metadata.
    scopes: ['openid', 'offline_access', ...opts.scopes],
    responseTypes: ['code'],
    // RFC 9700 §2.1.1 and MCP authorization: PKCE for every authorization
    // request; oidc-provider accepts S256 only (lib/helpers/pkce.js).
    pkce: { required: () => true },
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post'],
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      registration: { enabled: true, initialAccessToken: false },
      revocation: { enabled: true },
      userinfo: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // A client that names no resource gets the MCP resource.
        defaultResource: async (_ctx, _client, oneOf) => oneOf ?? opts.audience[0],
        getResourceServerInfo: async (_ctx, resource) => {
          // RFC 8707 §2: a resource this issuer does not serve is invalid_target.
          if (!opts.audience.includes(resource)) throw new errors.InvalidTarget()
          return { scope, accessTokenFormat: 'jwt', accessTokenTTL: ACCESS_TOKEN_TTL_SEC, jwt: { sign: { alg: 'RS256' } } }
        }
      }
    },
    formats: {
      customizers: {
        jwt: async (_ctx, token, jwt) => {
          // RFC 6749 §3.3: a request without `scope` gets a default. The MCP
          // SDK's client-credentials providers send none unless configured;
          // the token response reads token.scope after this, so it says so.
          if (token.kind === 'ClientCredentials' && (token.scope ?? '') === '') {
            token.scope = scope
            jwt.payload.scope = scope
          }
          /* c8 ignore next 2 -- oidc-provider gives a JWT access token one audience (a string); the checks keep the types honest */
          const granted = typeof jwt.payload.scope === 'string' ? jwt.payload.scope.split(' ').filter(s => s !== '') : []
          Object.assign(jwt.payload, scaleKitClaims(typeof jwt.payload.aud === 'string' ? jwt.payload.aud : undefined, granted))
        }
      }
    },
    // Refresh tokens for every client allowed the grant, offline_access or not:
    // MCP clients rarely ask for it and expect to refresh.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    // claims() serves ID tokens and userinfo only, which MCP clients do not ask for.
    /* c8 ignore next */
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: () => ({ sub }) }),
    interactions: { url: async (_ctx, interaction) => `${prefix}/interaction/${interaction.uid}` },
    // Consent is given on the user's behalf for what this issuer serves (news:read).
    loadExistingGrant: async (ctx: KoaContextWithOIDC) => {
      const { oidc } = ctx
      /* c8 ignore next 3 -- reached only when the session and client exist (oidc-provider calls it after login) */
      if (oidc.client === undefined || oidc.session?.accountId === undefined) return undefined
      const existing = oidc.session.grantIdFor(oidc.client.clientId)
      if (existing !== undefined) {
        const grant = await oidc.provider.Grant.find(existing)
        /* c8 ignore next -- a grant that expired under a live session: a new one is made below */
        if (grant !== undefined) return grant
      }
      const grant = new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId })
      const requested = new Set(String((oidc.params as { scope?: unknown }).scope ?? '').split(' '))
      const oidcScopes = ['openid', 'offline_access', ...opts.scopes].filter(s => requested.has(s))
      if (oidcScopes.length > 0) grant.addOIDCScope(oidcScopes.join(' '))
      /* c8 ignore next -- resourceServers is set for every authorization request (resource indicators are on) */
      for (const indicator of Object.keys(oidc.resourceServers ?? {})) grant.addResourceScope(indicator, scope)
      await grant.save()
      return grant
    },
    ttl: { AccessToken: ACCESS_TOKEN_TTL_SEC, ClientCredentials: ACCESS_TOKEN_TTL_SEC, RefreshToken: 24 * 3600, Session: 24 * 3600, Grant: 24 * 3600, Interaction: 600 },
    renderError: async (ctx, out) => {
      ctx.type = 'json'
      ctx.body = out
    },
    enableHttpPostMethods: false
  }
  const provider: OidcProvider = new Provider(opts.issuer, configuration)
  // oidc-provider logs a server_error itself only through its event emitter.
  provider.on('server_error', (_ctx, err) => { fastify.log.error({ err }, 'dev-issuer: server error') })
  // Trusts only the forwarded headers set below, from the issuer URL.
  provider.proxy = true
  const callback = provider.callback()

  let serving = true
  fastify.decorate('devIssuer', {
    issuer: opts.issuer,
    jwks,
    mintAccessToken,
    clientId: DEV_CLIENT_ID,
    clientSecret,
    get serving () { return serving }
  })

  const refuse = async (reply: FastifyReply): Promise<FastifyReply> => await reply.code(403).send({
    error: 'access_denied',
    error_description: 'the development issuer serves loopback only: this server listens on a non-loopback address (set DEV_ISSUER=on to allow it, or configure a real issuer)'
  })

  /** Hands the request to oidc-provider as if it were mounted at `prefix`, with `inner` as its path. */
  function mount (inner: (request: FastifyRequest) => string) {
    return async function handOver (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
      if (!serving) return await refuse(reply)
      const raw = request.raw as IncomingMessage & { originalUrl?: string }
      const { url } = raw
      const query = raw.url?.includes('?') === true ? raw.url.slice(raw.url.indexOf('?')) : ''
      const path = inner(request)
      raw.url = `${path}${query}`
      // oidc-provider takes its mount path from originalUrl minus url (lib/helpers/oidc_context.js).
      raw.originalUrl = `${prefix}${path}${query}`
      // Endpoint URLs in its answers follow the request's host and scheme:
      // pin both to the issuer's (an https issuer behind a TLS proxy included),
      // whatever the client sent.
      raw.headers.host = issuerUrl.host
      raw.headers['x-forwarded-host'] = issuerUrl.host
      raw.headers['x-forwarded-proto'] = issuerUrl.protocol.slice(0, -1)
      // Headers set by hooks (CORS) live on the reply; a hijacked reply drops them.
      for (const [name, value] of Object.entries(reply.getHeaders())) {
        if (value !== undefined) reply.raw.setHeader(name, value as string | string[] | number)
      }
      reply.hijack()
      await callback(raw, reply.raw)
      // The request log line names the URL the client asked for.
      raw.url = url
      return undefined
    }
  }
  const underPrefix = mount(request => request.url.slice(prefix.length).split('?')[0] || '/')
  const discovery = mount(() => '/.well-known/oauth-authorization-server')

  await fastify.register(async function devIssuerRoutes (child) {
    // oidc-provider reads (and bounds) the bodies itself: Fastify must leave them unread.
    child.removeAllContentTypeParsers()
    child.addContentTypeParser('*', (_request, _payload, done) => { done(null, undefined) })
    await child.register(rateLimit, {
      global: false,
      hook: 'onRequest',
      keyGenerator: (request) => request.ip,
      errorResponseBuilder: (_request, context) => {
        const error = new Error(`Too Many Requests: the development issuer allows ${context.max} token and registration requests per client per window; retry in ${context.after}`) as Error & { statusCode: number, code: string }
        error.statusCode = 429
        error.code = 'FST_DEV_ISSUER_RATE_LIMITED'
        return error
      }
    })
    const limited = { rateLimit: { max: opts.rateLimit?.max ?? 30, timeWindow: opts.rateLimit?.timeWindowMs ?? 60_000 } }
    const methods = ['GET', 'POST', 'OPTIONS', 'PUT', 'DELETE']
    child.route({ method: methods, url: prefix, handler: underPrefix })
    child.route({ method: methods, url: `${prefix}/*`, handler: underPrefix })
    // The endpoints that take a client's secret or create a client: limited per IP.
    child.route({ method: ['POST', 'OPTIONS'], url: `${prefix}/token`, config: limited, handler: underPrefix })
    child.route({ method: ['POST', 'OPTIONS'], url: `${prefix}/reg`, config: limited, handler: underPrefix })
    // RFC 8414 §3.1: the issuer's path goes after the well-known prefix; the
    // MCP SDK tries this form first, then `/.well-known/openid-configuration`
    // + path, then path + `/.well-known/openid-configuration` (served above).
    child.route({ method: ['GET', 'OPTIONS'], url: `/.well-known/oauth-authorization-server${prefix}`, handler: discovery })
    child.route({ method: ['GET', 'OPTIONS'], url: `/.well-known/openid-configuration${prefix}`, handler: discovery })

    // The development sign-in: one click, no password, consent given.
    child.get(`${prefix}/interaction/:uid`, async (request, reply) => {
      if (!serving) return await refuse(reply)
      const details = await provider.interactionDetails(request.raw, reply.raw).catch(() => undefined)
      if (details === undefined) return await reply.code(400).send({ error: 'invalid_request', error_description: 'this sign-in has expired or was never started: start again from your MCP client' })
      const clientId = String(details.params.client_id)
      const client = await provider.Client.find(clientId)
      return await reply.type('text/html; charset=utf-8').header('cache-control', 'no-store')
        .send(signInPage(`${prefix}/interaction/${details.uid}/login`, client?.clientName ?? clientId, String(details.params.scope ?? scope)))
    })
    child.post(`${prefix}/interaction/:uid/login`, async (request, reply) => {
      if (!serving) return await refuse(reply)
      const details = await provider.interactionDetails(request.raw, reply.raw).catch(() => undefined)
      if (details === undefined) return await reply.code(400).send({ error: 'invalid_request', error_description: 'this sign-in has expired or was never started: start again from your MCP client' })
      reply.hijack()
      await provider.interactionFinished(request.raw, reply.raw, { login: { accountId: DEV_ACCOUNT } }, { mergeWithLastSubmission: false })
      return undefined
    })
  })

  // The banner (with a token and the client secret) goes out only once the
  // server is known to listen on loopback alone: in a container, fastify-cli
  // listens on 0.0.0.0 and stdout ends up in collected logs.
  // Signed ahead, so that the banner is written synchronously as the server
  // starts listening (before `listen()` returns to its caller).
  let bannerToken = ''
  if (opts.announce !== false) fastify.addHook('onReady', async () => { bannerToken = await mintAccessToken() })
  fastify.addHook('onListen', function announce (done) {
    // A Unix socket (a string) is as local as loopback.
    const offLoopback = fastify.addresses().flatMap(a => typeof a === 'string' || isLoopbackHostname(a.address) ? [] : [a.address])
    if (offLoopback.length > 0 && opts.allowNonLoopback !== true) {
      serving = false
      fastify.log.error({ addresses: offLoopback }, 'DEVELOPMENT ISSUER REFUSED: the server listens on a non-loopback address, so it serves no tokens. Configure SCALEKIT_ENVIRONMENT_URL (or AUTH_ISSUERS and AUTH_JWKS_URI), or set DEV_ISSUER=on to run it anyway.')
      return done()
    }
    if (opts.announce === false) return done()
    fastify.log.warn({ issuer: opts.issuer }, 'DEVELOPMENT ISSUER ACTIVE: anyone who reaches it can sign in; tokens are signed by a throwaway key made at boot. Configure SCALEKIT_ENVIRONMENT_URL (or AUTH_ISSUERS and AUTH_JWKS_URI) for real use.')
    // The one deliberate exception to "never log a token": a banner on stdout
    // (not a log line) with a development token, so that a new user can connect.
    process.stdout.write([
      '',
      '================ DEVELOPMENT MODE: NOT FOR PRODUCTION ================',
      ` Issuer: ${opts.issuer} (ephemeral key, valid until restart)`,
      ` MCP endpoint: ${opts.audience[0] ?? ''}`,
      ' Sign in from an MCP client (MCP Inspector, claude mcp add): automatic, one click.',
      ` Client credentials: ${DEV_CLIENT_ID} / ${clientSecret}`,
      ` Bearer token (${Math.round(ttl / 3600)} h, scope ${scope}):`,
      '',
      bannerToken,
      '',
      '======================================================================',
      ''
    ].join('\n'))
    done()
  })
}

export default fp(devIssuerPlugin, { name: 'dev-issuer', fastify: '5.x' })
