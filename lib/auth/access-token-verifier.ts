import { jwtVerify, errors as joseErrors, type JWTPayload } from 'jose'
import { JwksUnavailableError, type KeyLookup } from './jwks-cache.js'

/** Who is calling, as the verified token says. The token itself is never kept. */
export interface AuthContext {
  /** `sub`, or for client-credentials tokens without one, the client id. */
  subject: string
  clientId: string | undefined
  /**
   * Who the caller is, with users and clients in separate namespaces:
   * `user:<sub>`, or `client:<client id>` for a token without `sub`
   * (client credentials). A token with no `sub` but `client_id: "alice"` is
   * `client:alice`, never the user alice.
   */
  principal: string
  scopes: string[]
  /** Seconds since the epoch. */
  expiresAt: number | undefined
  claims: JWTPayload
}

export type AuthFailureKind = 'invalid_request' | 'invalid_token' | 'insufficient_scope' | 'unavailable'

export class AuthFailure extends Error {
  constructor (readonly kind: AuthFailureKind, message: string, readonly retryAfterSec?: number) {
    super(message)
    this.name = 'AuthFailure'
  }
}

export interface AccessTokenVerifierOptions {
  issuers: string[]
  audiences: string[]
  algorithms: string[]
  requiredScopes: string[]
  clockToleranceSec: number
  getKey: KeyLookup
  /** Verified tokens kept, keyed by the token; 0 turns the cache off. */
  cacheSize: number
  /** Longest a verification is reused, whatever the token's `exp`. */
  cacheTtlMs?: number
  /** Tokens longer than this are refused before any parsing or crypto. */
  maxTokenLength?: number
}

/** `kid`: the signing key named by the token's header, so that the entry can go when that key does. */
interface CacheEntry { auth: AuthContext, until: number, kid: string | undefined }

// Three base64url segments; the signature may not be empty (that is `alg: none`).
const JWS_COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/

/** ScaleKit has used both a `scopes` array and an RFC 8693 `scope` string; some issuers use `scp`. */
export function scopesOf (claims: JWTPayload): string[] {
  const found = new Set<string>()
  const { scope, scopes, scp } = claims as { scope?: unknown, scopes?: unknown, scp?: unknown }
  for (const value of [scope, scopes, scp]) {
    const items: unknown[] = typeof value === 'string' ? value.split(' ') : Array.isArray(value) ? value : []
    for (const item of items) {
      if (typeof item === 'string' && item !== '') found.add(item)
    }
  }
  return [...found]
}

function describe (err: unknown): string {
  if (err instanceof joseErrors.JWTExpired) return 'the access token has expired'
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'iss': return 'the access token was not issued by an accepted issuer'
      case 'aud': return 'the access token was not issued for this resource (audience mismatch)'
      case 'nbf': return 'the access token is not valid yet'
      case 'exp': return 'the access token has no valid expiry'
      /* c8 ignore next 2 -- jose validates only the claims requested above and iat/typ, which are not configured */
      default: return `the access token's "${err.claim}" claim is invalid`
    }
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'the access token is signed with an algorithm that is not accepted'
  if (err instanceof joseErrors.JWKSNoMatchingKey) return 'no signing key of the authorization server matches the access token'
  // jose 6 does not try each candidate itself: without a `kid`, two keys of the token's algorithm are ambiguous.
  if (err instanceof joseErrors.JWKSMultipleMatchingKeys) return 'the access token names no key id (kid) and several signing keys match it'
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'the access token signature is invalid'
  return 'the access token is malformed'
}

/**
 * Verifies bearer JWTs locally (signature against the issuer's keys, then
 * `iss`, `aud`, `exp`/`nbf`), and caches what it verified, keyed by the
 * token, for no longer than the token lives.
 */
export class AccessTokenVerifier {
  readonly #opts: Required<AccessTokenVerifierOptions>
  readonly #cache = new Map<string, CacheEntry>()
  /** Signatures checked so far (cache misses): lets tests and metrics see what the cache saves. */
  verifications = 0

  constructor (opts: AccessTokenVerifierOptions) {
    this.#opts = { cacheTtlMs: 5 * 60_000, maxTokenLength: 8192, ...opts }
  }

  get requiredScopes (): string[] {
    return this.#opts.requiredScopes
  }

  /** Resolves to the caller, or rejects with an `AuthFailure` saying what RFC 6750 error applies. */
  async verify (token: string): Promise<AuthContext> {
    const cached = this.#cache.get(token)
    if (cached !== undefined) {
      if (Date.now() < cached.until) return this.#withScope(cached.auth)
      this.#cache.delete(token)
    }
    if (token.length > this.#opts.maxTokenLength) {
      throw new AuthFailure('invalid_token', 'the access token is too long')
    }
    if (!JWS_COMPACT.test(token)) throw new AuthFailure('invalid_token', 'the access token is not a signed JWT')

    let payload: JWTPayload
    let kid: string | undefined
    this.verifications++
    try {
      let protectedHeader: { kid?: string }
      ({ payload, protectedHeader } = await jwtVerify(token, this.#opts.getKey, {
        issuer: this.#opts.issuers,
        audience: this.#opts.audiences,
        algorithms: this.#opts.algorithms,
        clockTolerance: this.#opts.clockToleranceSec,
        requiredClaims: ['exp']
      }))
      kid = protectedHeader.kid
    } catch (err) {
      if (err instanceof JwksUnavailableError) throw new AuthFailure('unavailable', err.message, err.retryAfterSec)
      throw new AuthFailure('invalid_token', describe(err))
    }

    const clientId = [payload.client_id, payload.azp, payload.cid].find(v => typeof v === 'string') as string | undefined
    const subject = typeof payload.sub === 'string' && payload.sub !== '' ? payload.sub : clientId
    if (subject === undefined) throw new AuthFailure('invalid_token', 'the access token names no subject')
    const principal = subject === payload.sub ? `user:${subject}` : `client:${subject}`
    const auth: AuthContext = { subject, clientId, principal, scopes: scopesOf(payload), expiresAt: payload.exp, claims: payload }

    if (this.#opts.cacheSize > 0) {
      if (this.#cache.size >= this.#opts.cacheSize) {
        // Map iteration order is insertion order: drop the oldest entry.
        this.#cache.delete(this.#cache.keys().next().value as string)
      }
      this.#cache.set(token, { auth, until: Math.min((payload.exp as number) * 1000, Date.now() + this.#opts.cacheTtlMs), kid })
    }
    return this.#withScope(auth)
  }

  #withScope (auth: AuthContext): AuthContext {
    for (const scope of this.#opts.requiredScopes) {
      if (!auth.scopes.includes(scope)) {
        throw new AuthFailure('insufficient_scope', `the access token lacks the required scope '${this.#opts.requiredScopes.join(' ')}'`)
      }
    }
    return auth
  }

  /** Forget every verification (after a key is revoked, say). */
  clearCache (): void {
    this.#cache.clear()
  }

  /**
   * Forgets the verifications that keys no longer published vouched for: a
   * key that left the issuer's JWKS (rotated out, or revoked) must not keep
   * its tokens accepted from the cache. A token without a `kid` was matched to
   * a key by its algorithm alone, so any removed key may have been its key.
   */
  forgetKeys (kids: Array<string | undefined>): number {
    const gone = new Set(kids)
    let forgotten = 0
    for (const [token, entry] of this.#cache) {
      if (entry.kid === undefined || gone.has(entry.kid)) {
        this.#cache.delete(token)
        forgotten++
      }
    }
    return forgotten
  }
}
