import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify'
import type { JSONWebKeySet } from 'jose'
import type { Dispatcher } from 'undici'
import { JwksCache, localKeyLookup } from '../lib/auth/jwks-cache.js'
import { AccessTokenVerifier, AuthFailure, type AuthContext, type AuthFailureKind } from '../lib/auth/access-token-verifier.js'
import { authDecisionChannel } from '../lib/observability/channels.js'

export type { AuthContext } from '../lib/auth/access-token-verifier.js'

export interface AuthPluginOptions {
  /** Accepted `iss` values. */
  issuers: string[]
  /** Accepted `aud` values: the token's audience must include one of them (RFC 8707). */
  audiences: string[]
  /** Where the issuer publishes its keys; or give `jwks` to hold them in memory. */
  jwksUri?: string
  jwks?: JSONWebKeySet
  /** Every one of these must be granted (default `news:read`). */
  requiredScopes?: string[]
  /** Accepted signature algorithms (default RS256 and ES256). */
  algorithms?: string[]
  clockToleranceSec?: number
  jwksTimeoutMs?: number
  jwksCooldownMs?: number
  jwksRefreshMs?: number
  tokenCacheSize?: number
  /** Published in every challenge so clients find the authorization server (RFC 9728 §5.1). */
  resourceMetadataUrl: string
  jwksDispatcher?: Dispatcher
}

const defaults = {
  requiredScopes: ['news:read'],
  algorithms: ['RS256', 'ES256'],
  clockToleranceSec: 10,
  jwksTimeoutMs: 5000,
  jwksCooldownMs: 30_000,
  jwksRefreshMs: 600_000,
  tokenCacheSize: 10_000
}

declare module 'fastify' {
  interface FastifyInstance {
    /** An `onRequest` hook: sets `request.auth`, or answers 401/403/503 with an RFC 6750 challenge. */
    authenticate: onRequestAsyncHookHandler
    accessTokenVerifier: AccessTokenVerifier
    /** The remote key set, when keys come from a JWKS URI (readiness, metrics). */
    jwksCache: JwksCache | null
  }
  interface FastifyRequest {
    auth: AuthContext | null
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

function validateOptions (opts: AuthPluginOptions): void {
  const fail = (what: string): never => { throw new Error(`mcp-auth: ${what}`) }
  if (!Array.isArray(opts.issuers) || opts.issuers.length === 0) fail('"issuers" must list at least one issuer')
  if (!Array.isArray(opts.audiences) || opts.audiences.length === 0) fail('"audiences" must list at least one audience')
  if ((opts.jwksUri === undefined) === (opts.jwks === undefined)) fail('give exactly one of "jwksUri" and "jwks"')
  if (typeof opts.resourceMetadataUrl !== 'string') fail('"resourceMetadataUrl" is required')
  for (const alg of opts.algorithms ?? []) if (alg.startsWith('HS') || alg === 'none') fail(`algorithm ${alg} is not allowed: only asymmetric algorithms verify tokens from a third party`)
}

async function authPlugin (fastify: FastifyInstance, options: AuthPluginOptions): Promise<void> {
  validateOptions(options)
  const opts = { ...defaults, ...options }
  const scope = opts.requiredScopes.join(' ')

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
  const verifier = new AccessTokenVerifier({
    issuers: opts.issuers,
    audiences: opts.audiences,
    algorithms: opts.algorithms,
    requiredScopes: opts.requiredScopes,
    clockToleranceSec: opts.clockToleranceSec,
    cacheSize: opts.tokenCacheSize,
    getKey: jwksCache?.getKey ?? localKeyLookup(opts.jwks as JSONWebKeySet)
  })
  jwksCache?.onKeysRemoved(kids => {
    const forgotten = verifier.forgetKeys(kids)
    fastify.log.info({ removedKeys: kids.length, forgottenVerifications: forgotten }, 'signing keys left the JWKS; cached verifications they made are forgotten')
  })

  // Keys are fetched while the server starts, not by the first request; an
  // unreachable issuer does not stop the boot (readiness reports it instead).
  fastify.addHook('onReady', async () => { await jwksCache?.start() })
  fastify.addHook('onClose', async () => { jwksCache?.close() })

  // Values computed once: the challenges never change for a given config.
  const noCredentialsChallenge = bearerChallenge({ resource_metadata: opts.resourceMetadataUrl, scope })

  function deny (request: FastifyRequest, reply: FastifyReply, failure: AuthFailure): FastifyReply {
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

  async function authenticate (request: FastifyRequest, reply: FastifyReply): Promise<void> {
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
      return deny(request, reply, new AuthFailure('invalid_request', 'the request carries more than one Authorization header'))
    }
    // RFC 6750 §2.1: `Bearer` (any case), one or more spaces, the token.
    if (header.length < 7 || header.slice(0, 7).toLowerCase() !== 'bearer ') {
      request.log.info({ auth: { outcome: 'denied', reason: 'not_bearer' } }, 'auth decision')
      if (authDecisionChannel.hasSubscribers) authDecisionChannel.publish({ outcome: 'denied', reason: 'not_bearer' })
      return reply.code(401).header('www-authenticate', noCredentialsChallenge)
        .send({ error: 'invalid_request', error_description: 'only the Bearer authentication scheme is accepted' })
    }
    try {
      request.auth = await verifier.verify(header.slice(7).trim())
    } catch (err) {
      /* c8 ignore next -- verify() only rejects with AuthFailure */
      if (!(err instanceof AuthFailure)) throw err
      return deny(request, reply, err)
    }
    request.log.debug({ auth: { outcome: 'allowed', subject: request.auth.subject, client: request.auth.clientId } }, 'auth decision')
    if (authDecisionChannel.hasSubscribers) authDecisionChannel.publish({ outcome: 'allowed', reason: 'valid' })
  }

  fastify.decorateRequest('auth', null)
  fastify.decorate('accessTokenVerifier', verifier)
  fastify.decorate('jwksCache', jwksCache)
  fastify.decorate('authenticate', authenticate)
}

export default fp(authPlugin, { name: 'mcp-auth', fastify: '5.x' })
