import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler, onRequestHookHandler } from 'fastify'
import type { JSONWebKeySet } from 'jose'
import type { Dispatcher } from 'undici'
import { JwksCache, localKeyLookup } from '../lib/auth/jwks-cache.js'
import { AccessTokenVerifier, AuthFailure, type AuthContext, type AuthFailureKind } from '../lib/auth/access-token-verifier.js'
import { authDecisionChannel } from '../lib/observability/channels.js'
import { TokenIntrospector, type TokenIntrospectionOptions } from '../lib/auth/token-introspection.js'

export type { AuthContext } from '../lib/auth/access-token-verifier.js'
export type { TokenIntrospectionOptions } from '../lib/auth/token-introspection.js'

export interface AuthPluginOptions {
  /**
   * Accepted `iss` values.
   * @error mcp-auth: "issuers" must list at least one issuer
   */
  issuers: string[]
  /**
   * Accepted `aud` values: the token's audience must include one of them (RFC 8707).
   * @error mcp-auth: "audiences" must list at least one audience
   */
  audiences: string[]
  /**
   * Where the issuer publishes its signing keys (JWT access tokens).
   * @error mcp-auth: give at most one of "jwksUri" and "jwks"
   */
  jwksUri?: string
  /**
   * The issuer's keys held in memory, instead of `jwksUri`.
   * @error mcp-auth: give "jwksUri", "jwks" or "introspection": where tokens are checked
   */
  jwks?: JSONWebKeySet
  /**
   * RFC 7662 token introspection, for issuers of opaque tokens: tokens that are
   * not JWTs (or every token, without `jwksUri`/`jwks`) are checked there.
   * @error mcp-auth: "introspection" needs an http(s) "endpoint", a "clientId" and a "clientSecret"
   */
  introspection?: TokenIntrospectionOptions
  /**
   * Scopes every route protected by `fastify.authenticate` requires; a route adds its own
   * with `config: { auth: { scopes } }` or `fastify.requireScopes()`.
   * @default []
   * @error mcp-auth: "requiredScopes" must be an array of scope tokens (RFC 6749 §3.3)
   */
  requiredScopes?: string[]
  /**
   * Accepted JWT signature algorithms.
   * @default ['RS256', 'ES256']
   * @error mcp-auth: algorithm HS256 is not allowed: only asymmetric algorithms verify tokens from a third party
   */
  algorithms?: string[]
  /**
   * Seconds of clock skew allowed on `exp` and `nbf`.
   * @default 10
   */
  clockToleranceSec?: number
  /**
   * Deadline of one JWKS fetch.
   * @default 5000
   */
  jwksTimeoutMs?: number
  /**
   * Minimum time between two JWKS fetches (unknown `kid`, failures).
   * @default 30000
   */
  jwksCooldownMs?: number
  /**
   * Background JWKS refresh period.
   * @default 600000
   */
  jwksRefreshMs?: number
  /**
   * Verified JWTs kept (never past their `exp`); 0 turns the cache off.
   * @default 10000
   */
  tokenCacheSize?: number
  /**
   * Published in every challenge so clients find the authorization server (RFC 9728 §5.1).
   * @error mcp-auth: "resourceMetadataUrl" is required
   */
  resourceMetadataUrl: string
  /** An undici dispatcher for JWKS fetches (proxies, tests). */
  jwksDispatcher?: Dispatcher
}

/** What a route's `config.auth` may say: `true` (the plugin's required scopes) or scopes of its own on top. */
export type RouteAuthConfig = true | { scopes?: string[] }

const defaults = {
  requiredScopes: [] as string[],
  algorithms: ['RS256', 'ES256'],
  clockToleranceSec: 10,
  jwksTimeoutMs: 5000,
  jwksCooldownMs: 30_000,
  jwksRefreshMs: 600_000,
  tokenCacheSize: 10_000
}

declare module 'fastify' {
  interface FastifyInstance {
    /** An `onRequest` hook: sets `request.auth`, or answers 401/403/503 with an RFC 6750 challenge. Requires `requiredScopes`. */
    authenticate: onRequestAsyncHookHandler
    /** An `onRequest` hook like `authenticate` that also requires these scopes. Build it once per route, at registration. */
    requireScopes: (scopes: string[]) => onRequestAsyncHookHandler
    /**
     * Answers 403 `insufficient_scope` with the RFC 6750 §3.1 challenge naming
     * `scopes` (what the request needs), as MCP 2025-11-25 authorization
     * "Scope Challenge Handling" expects, so that clients can step up.
     */
    refuseInsufficientScope: (request: FastifyRequest, reply: FastifyReply, scopes: readonly string[]) => FastifyReply
    /** The scopes `authenticate` requires. */
    requiredScopes: readonly string[]
    /** Every scope some route or tool requires, for the protected-resource metadata's `scopes_supported`. Plugins add theirs at registration. */
    scopesInUse: Set<string>
    accessTokenVerifier: AccessTokenVerifier
    /** The remote key set, when keys come from a JWKS URI (readiness, metrics). */
    jwksCache: JwksCache | null
    /** The RFC 7662 client, when `introspection` is configured. */
    tokenIntrospector: TokenIntrospector | null
  }
  interface FastifyRequest {
    auth: AuthContext | null
  }
  interface FastifyContextConfig {
    /** Protects the route with the mcp-auth plugin, optionally requiring more scopes. */
    auth?: RouteAuthConfig
  }
}

/**
 * RFC 6750 §3: `error_description` (and `scope`) values "MUST NOT include
 * characters outside the set %x20-21 / %x23-5B / %x5D-7E", so `"` and `\`
 * cannot even be escaped: a double quote becomes a single one, the rest of
 * what falls outside the set is dropped.
 */
function quoted (value: string): string {
  return `"${value.replace(/"/g, "'").replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, '')}"`
}

export function bearerChallenge (params: Record<string, string | undefined>): string {
  const parts: string[] = []
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined) parts.push(`${key}=${quoted(value)}`)
  }
  return parts.length === 0 ? 'Bearer' : `Bearer ${parts.join(', ')}`
}

const STATUS: Record<AuthFailureKind, number> = {
  invalid_request: 400,
  invalid_token: 401,
  insufficient_scope: 403,
  unavailable: 503
}

function countAuthorizationHeaders (rawHeaders: string[]): number {
  let n = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string
    if (name.length === 13 && name.toLowerCase() === 'authorization') n++
  }
  return n
}

/** RFC 6749 §3.3 scope-token. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/
/** Two dots and no space: shaped like a JWS compact serialization, so not opaque. */
const JWT_SHAPED = /^[^.\s]+\.[^.\s]+\.[^.\s]*$/

function isScopeList (value: unknown): value is string[] {
  return Array.isArray(value) && value.every(s => typeof s === 'string' && SCOPE_TOKEN.test(s))
}

function validateOptions (opts: AuthPluginOptions): void {
  const fail = (what: string): never => { throw new Error(`mcp-auth: ${what}`) }
  if (!Array.isArray(opts.issuers) || opts.issuers.length === 0) fail('"issuers" must list at least one issuer')
  if (!Array.isArray(opts.audiences) || opts.audiences.length === 0) fail('"audiences" must list at least one audience')
  if (opts.jwksUri !== undefined && opts.jwks !== undefined) fail('give at most one of "jwksUri" and "jwks"')
  if (opts.jwksUri === undefined && opts.jwks === undefined && opts.introspection === undefined) fail('give "jwksUri", "jwks" or "introspection": where tokens are checked')
  const i = opts.introspection
  if (i !== undefined && (typeof i?.endpoint !== 'string' || !/^https?:\/\//.test(i.endpoint) || typeof i.clientId !== 'string' || i.clientId === '' || typeof i.clientSecret !== 'string' || i.clientSecret === '')) {
    fail('"introspection" needs an http(s) "endpoint", a "clientId" and a "clientSecret"')
  }
  if (typeof opts.resourceMetadataUrl !== 'string') fail('"resourceMetadataUrl" is required')
  if (opts.requiredScopes !== undefined && !isScopeList(opts.requiredScopes)) fail('"requiredScopes" must be an array of scope tokens (RFC 6749 §3.3)')
  for (const alg of opts.algorithms ?? []) if (alg.startsWith('HS') || alg === 'none') fail(`algorithm ${alg} is not allowed: only asymmetric algorithms verify tokens from a third party`)
}

async function authPlugin (fastify: FastifyInstance, options: AuthPluginOptions): Promise<void> {
  validateOptions(options)
  const opts = { ...defaults, ...options }
  const requiredScopes = [...new Set(opts.requiredScopes)]
  const scopesInUse = new Set(requiredScopes)

  let jwksCache: JwksCache | null = null
  if (opts.jwksUri !== undefined) {
    jwksCache = new JwksCache({
      uri: opts.jwksUri,
      timeoutMs: opts.jwksTimeoutMs,
      cooldownMs: opts.jwksCooldownMs,
      refreshMs: opts.jwksRefreshMs,
      dispatcher: opts.jwksDispatcher,
      log: fastify.log
    })
  }
  const keyLookup = jwksCache?.getKey ?? (opts.jwks !== undefined ? localKeyLookup(opts.jwks) : undefined)
  // Scopes are checked per route below, so one verification serves every route.
  const verifier = new AccessTokenVerifier({
    issuers: opts.issuers,
    audiences: opts.audiences,
    algorithms: opts.algorithms,
    requiredScopes: [],
    clockToleranceSec: opts.clockToleranceSec,
    cacheSize: opts.tokenCacheSize,
    getKey: keyLookup ?? localKeyLookup({ keys: [] })
  })
  jwksCache?.onKeysRemoved(kids => {
    const forgotten = verifier.forgetKeys(kids)
    fastify.log.info({ removedKeys: kids.length, forgottenVerifications: forgotten }, 'signing keys left the JWKS; cached verifications they made are forgotten')
  })
  const introspector = opts.introspection === undefined
    ? null
    : new TokenIntrospector({ ...opts.introspection, issuers: opts.issuers, audiences: opts.audiences })

  /** JWTs are verified locally; opaque tokens (or all tokens, without keys) go to introspection. */
  function verify (token: string): Promise<AuthContext> {
    if (introspector !== null && (keyLookup === undefined || !JWT_SHAPED.test(token))) return introspector.verify(token)
    return verifier.verify(token)
  }

  // Keys are fetched while the server starts, not by the first request; an
  // unreachable issuer does not stop the boot (readiness reports it instead).
  fastify.addHook('onReady', async () => { await jwksCache?.start() })
  fastify.addHook('onClose', async () => { jwksCache?.close() })

  function deny (request: FastifyRequest, reply: FastifyReply, failure: AuthFailure, scope: string | undefined): FastifyReply {
    const status = STATUS[failure.kind]
    request.log.info({ auth: { outcome: 'denied', reason: failure.kind, detail: failure.message } }, 'auth decision')
    if (authDecisionChannel.hasSubscribers) authDecisionChannel.publish({ outcome: 'denied', reason: failure.kind })
    if (failure.kind === 'unavailable') {
      // Not the client's fault, and not a verdict on its token: RFC 9110 §15.6.4 with Retry-After.
      /* c8 ignore next -- the verifier's 'unavailable' failures all carry the JWKS cache's delay; 30 s only guards other callers */
      reply.header('retry-after', String(failure.retryAfterSec ?? 30))
      return reply.code(status).send({ error: 'temporarily_unavailable', error_description: failure.message })
    }
    // RFC 6750 §3 and MCP authorization "Error Handling": every challenge carries the metadata URL.
    reply.header('www-authenticate', bearerChallenge({
      error: failure.kind,
      error_description: failure.message,
      resource_metadata: opts.resourceMetadataUrl,
      // §3.1: insufficient_scope "MAY include the scope attribute with the scope necessary".
      scope: failure.kind === 'insufficient_scope' ? scope : undefined
    }))
    return reply.code(status).send({ error: failure.kind, error_description: failure.message })
  }

  function lacking (granted: readonly string[], needed: readonly string[]): boolean {
    for (const scope of needed) if (!granted.includes(scope)) return true
    return false
  }

  function refuseInsufficientScope (request: FastifyRequest, reply: FastifyReply, scopes: readonly string[]): FastifyReply {
    const scope = scopes.join(' ')
    return deny(request, reply, new AuthFailure('insufficient_scope', `the access token lacks the required scope '${scope}'`), scope)
  }

  /** The onRequest hook requiring `needed`; challenges are built once, here, not per request. */
  function guard (needed: readonly string[]): onRequestAsyncHookHandler {
    for (const scope of needed) scopesInUse.add(scope)
    const scope = needed.length > 0 ? needed.join(' ') : undefined
    // MCP authorization "Protected Resource Metadata Discovery": a 401 SHOULD name the scopes needed.
    const noCredentialsChallenge = bearerChallenge({ resource_metadata: opts.resourceMetadataUrl, scope })
    return async function authenticate (request: FastifyRequest, reply: FastifyReply): Promise<void> {
      const header = request.headers.authorization
      if (header === undefined || header === '') {
        // RFC 6750 §3.1: a request without credentials gets a challenge without an error code.
        request.log.info({ auth: { outcome: 'denied', reason: 'no_credentials' } }, 'auth decision')
        if (authDecisionChannel.hasSubscribers) authDecisionChannel.publish({ outcome: 'denied', reason: 'no_credentials' })
        return reply.code(401).header('www-authenticate', noCredentialsChallenge)
          .send({ error: 'invalid_request', error_description: 'this resource needs a bearer access token (Authorization: Bearer <token>)' })
      }
      // Node keeps only the first of repeated Authorization headers; a second one
      // is an ambiguous credential, which RFC 6750 §3.1 calls invalid_request.
      if (countAuthorizationHeaders(request.raw.rawHeaders) > 1) {
        return deny(request, reply, new AuthFailure('invalid_request', 'the request carries more than one Authorization header'), scope)
      }
      // RFC 6750 §2.1: `Bearer` (any case), one or more spaces, the token.
      if (header.length < 7 || header.slice(0, 7).toLowerCase() !== 'bearer ') {
        request.log.info({ auth: { outcome: 'denied', reason: 'not_bearer' } }, 'auth decision')
        if (authDecisionChannel.hasSubscribers) authDecisionChannel.publish({ outcome: 'denied', reason: 'not_bearer' })
        return reply.code(401).header('www-authenticate', noCredentialsChallenge)
          .send({ error: 'invalid_request', error_description: 'only the Bearer authentication scheme is accepted' })
      }
      let auth: AuthContext
      try {
        auth = await verify(header.slice(7).trim())
      } catch (err) {
        /* c8 ignore next -- verify() only rejects with AuthFailure */
        if (!(err instanceof AuthFailure)) throw err
        return deny(request, reply, err, scope)
      }
      if (lacking(auth.scopes, needed)) return refuseInsufficientScope(request, reply, needed)
      request.auth = auth
      request.log.debug({ auth: { outcome: 'allowed', subject: auth.subject, client: auth.clientId } }, 'auth decision')
      if (authDecisionChannel.hasSubscribers) authDecisionChannel.publish({ outcome: 'allowed', reason: 'valid' })
    }
  }

  function requireScopes (scopes: string[]): onRequestAsyncHookHandler {
    if (!isScopeList(scopes)) throw new Error('mcp-auth: requireScopes() takes an array of scope tokens (RFC 6749 §3.3)')
    return guard([...new Set([...requiredScopes, ...scopes])])
  }

  const authenticate = guard(requiredScopes)

  // Routes that say `config: { auth: … }` are protected without naming the hook.
  fastify.addHook('onRoute', function protectRoute (route) {
    const auth = route.config?.auth
    if (auth === undefined) return
    const scopes = auth === true ? [] : auth?.scopes ?? []
    if (!isScopeList(scopes)) throw new Error(`mcp-auth: route ${route.method} ${route.url}: config.auth.scopes must be an array of scope tokens`)
    const hook = scopes.length === 0 ? authenticate : requireScopes(scopes)
    const existing = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest]
    route.onRequest = [hook as onRequestHookHandler, ...existing as onRequestHookHandler[]]
  })

  fastify.decorateRequest('auth', null)
  fastify.decorate('accessTokenVerifier', verifier)
  fastify.decorate('jwksCache', jwksCache)
  fastify.decorate('tokenIntrospector', introspector)
  fastify.decorate('authenticate', authenticate)
  fastify.decorate('requireScopes', requireScopes)
  fastify.decorate('refuseInsufficientScope', refuseInsufficientScope)
  fastify.decorate('requiredScopes', requiredScopes)
  fastify.decorate('scopesInUse', scopesInUse)
}

export default fp(authPlugin, { name: 'mcp-auth', fastify: '5.x' })
