import type { Dispatcher } from 'undici'
import { fetchBoundedJson } from '../http/bounded-json.js'
import { AuthFailure, type AuthContext } from './access-token-verifier.js'

export interface TokenIntrospectionOptions {
  /**
   * The authorization server's RFC 7662 introspection endpoint (http or https URL).
   * @error mcp-auth: "introspection" needs an http(s) "endpoint", a "clientId" and a "clientSecret"
   */
  endpoint: string
  /**
   * This resource server's own client id at the authorization server (RFC 7662 §2.1: the endpoint is protected).
   * @error mcp-auth: "introspection" needs an http(s) "endpoint", a "clientId" and a "clientSecret"
   */
  clientId: string
  /**
   * Its client secret, sent with HTTP Basic authentication; never logged.
   * @error mcp-auth: "introspection" needs an http(s) "endpoint", a "clientId" and a "clientSecret"
   */
  clientSecret: string
  /**
   * Whole-call deadline (connect, headers and body); past it the request gets 503.
   * @default 5000
   */
  timeoutMs?: number
  /**
   * After a failed call, how long requests are answered 503 without asking again (as the JWKS cooldown).
   * @default 5000
   */
  cooldownMs?: number
  /**
   * Longest an answer is reused, whatever the token's `exp` (a revocation shows after at most this).
   * @default 60000
   */
  cacheTtlMs?: number
  /**
   * Introspected tokens kept; 0 turns the cache off.
   * @default 10000
   */
  cacheSize?: number
  /** An undici dispatcher for introspection calls (proxies, tests). */
  dispatcher?: Dispatcher
}

interface CacheEntry { auth: AuthContext | undefined, until: number }

interface IntrospectionResponse {
  active?: unknown
  scope?: unknown
  client_id?: unknown
  sub?: unknown
  exp?: unknown
  nbf?: unknown
  aud?: unknown
  iss?: unknown
  [claim: string]: unknown
}

const MAX_BYTES = 64 * 1024
const MAX_TOKEN_LENGTH = 8192
/** An inactive answer is reused this long, so a flood of one bad token cannot flood the authorization server. */
const INACTIVE_TTL_MS = 10_000

/**
 * RFC 7662 token introspection for opaque access tokens: the authorization
 * server says whether the token is active and what it carries. Answers are
 * cached (bounded, never past the token's `exp`); an endpoint that fails or
 * hangs makes the caller answer 503 with Retry-After, never 401, since the
 * token may well be good (the rule the JWKS cache follows too).
 */
export class TokenIntrospector {
  readonly #opts: Required<Omit<TokenIntrospectionOptions, 'dispatcher'>> & Pick<TokenIntrospectionOptions, 'dispatcher'>
  readonly #issuers: ReadonlySet<string>
  readonly #audiences: readonly string[]
  readonly #authorization: string
  readonly #cache = new Map<string, CacheEntry>()
  #failedAt = 0
  /** Calls made to the endpoint so far (tests and metrics see that caching works). */
  calls = 0

  constructor (opts: TokenIntrospectionOptions & { issuers: string[], audiences: string[] }) {
    const { issuers, audiences, ...rest } = opts
    this.#opts = { timeoutMs: 5000, cooldownMs: 5000, cacheTtlMs: 60_000, cacheSize: 10_000, ...rest }
    this.#issuers = new Set(issuers)
    this.#audiences = audiences
    // RFC 6749 §2.3.1: client_secret_basic form-encodes both parts first.
    this.#authorization = `Basic ${Buffer.from(`${encodeURIComponent(rest.clientId)}:${encodeURIComponent(rest.clientSecret)}`).toString('base64')}`
  }

  async verify (token: string): Promise<AuthContext> {
    const cached = this.#cache.get(token)
    if (cached !== undefined) {
      if (Date.now() < cached.until) return this.#accept(cached.auth)
      this.#cache.delete(token)
    }
    if (token.length > MAX_TOKEN_LENGTH) throw new AuthFailure('invalid_token', 'the access token is too long')
    const retryAfterMs = this.#failedAt + this.#opts.cooldownMs - Date.now()
    if (retryAfterMs > 0) throw this.#unavailable(retryAfterMs)

    let answer: IntrospectionResponse
    try {
      answer = await this.#introspect(token)
    } catch (err) {
      this.#failedAt = Date.now()
      throw this.#unavailable(this.#opts.cooldownMs, err)
    }
    const auth = this.#contextOf(answer)
    const until = Math.min(
      Date.now() + (auth === undefined ? INACTIVE_TTL_MS : this.#opts.cacheTtlMs),
      typeof answer.exp === 'number' ? answer.exp * 1000 : Infinity
    )
    if (this.#opts.cacheSize > 0) {
      if (this.#cache.size >= this.#opts.cacheSize) this.#cache.delete(this.#cache.keys().next().value as string)
      this.#cache.set(token, { auth, until })
    }
    return this.#accept(auth)
  }

  clearCache (): void {
    this.#cache.clear()
  }

  #accept (auth: AuthContext | undefined): AuthContext {
    if (auth === undefined) throw new AuthFailure('invalid_token', 'the access token is not active (revoked, expired or unknown to the authorization server)')
    return auth
  }

  #unavailable (retryAfterMs: number, cause?: unknown): AuthFailure {
    const failure = new AuthFailure('unavailable', 'the authorization server\'s token introspection is unavailable', Math.max(1, Math.ceil(retryAfterMs / 1000)))
    if (cause !== undefined) failure.cause = cause
    return failure
  }

  /** The caller, or undefined for a token that is not active, or not meant for this resource. */
  #contextOf (answer: IntrospectionResponse): AuthContext | undefined {
    if (answer.active !== true) return undefined
    const now = Date.now() / 1000
    if (typeof answer.exp === 'number' && answer.exp <= now) return undefined
    if (typeof answer.nbf === 'number' && answer.nbf > now + 10) return undefined
    if (typeof answer.iss === 'string' && !this.#issuers.has(answer.iss)) return undefined
    // RFC 8707 and MCP authorization "Token Audience Binding": a token must name this resource.
    const audiences = typeof answer.aud === 'string' ? [answer.aud] : Array.isArray(answer.aud) ? answer.aud : []
    if (!audiences.some(a => this.#audiences.includes(a as string))) return undefined
    const clientId = typeof answer.client_id === 'string' ? answer.client_id : undefined
    const subject = typeof answer.sub === 'string' && answer.sub !== '' ? answer.sub : clientId
    if (subject === undefined) return undefined
    return {
      subject,
      clientId,
      // As for JWTs (issue 8, point 8): users and clients in separate namespaces.
      principal: subject === answer.sub ? `user:${subject}` : `client:${subject}`,
      scopes: typeof answer.scope === 'string' ? answer.scope.split(' ').filter(s => s !== '') : [],
      expiresAt: typeof answer.exp === 'number' ? answer.exp : undefined,
      claims: answer as AuthContext['claims']
    }
  }

  async #introspect (token: string): Promise<IntrospectionResponse> {
    this.calls++
    const parsed = await fetchBoundedJson(this.#opts.endpoint, {
      method: 'POST',
      headers: { authorization: this.#authorization, 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ token, token_type_hint: 'access_token' }).toString(),
      timeoutMs: this.#opts.timeoutMs,
      maxBytes: MAX_BYTES,
      dispatcher: this.#opts.dispatcher,
      what: 'introspection'
    })
    if (parsed === null || typeof parsed !== 'object' || typeof (parsed as IntrospectionResponse).active !== 'boolean') {
      throw new Error('introspection answer has no boolean "active" member (RFC 7662 §2.2)')
    }
    return parsed as IntrospectionResponse
  }
}
