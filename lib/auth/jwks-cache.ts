import { createLocalJWKSet, errors as joseErrors, type JSONWebKeySet } from 'jose'
import type { Dispatcher } from 'undici'
import { fetchBoundedJson } from '../http/bounded-json.js'
import type { FastifyBaseLogger } from 'fastify'
import { jwksFetchChannel } from '../observability/channels.js'

/** The key lookup jose's `jwtVerify` calls with the token's protected header. */
export type KeyLookup = (...args: Parameters<ReturnType<typeof createLocalJWKSet>>) => ReturnType<ReturnType<typeof createLocalJWKSet>>

/** No keys could be had from the issuer: the token may well be good, so this is not a 401 (retry later). */
export class JwksUnavailableError extends Error {
  code = 'ERR_JWKS_UNAVAILABLE'
  constructor (readonly retryAfterSec: number, cause?: unknown) {
    super('the authorization server\'s signing keys are unavailable', { cause })
    this.name = 'JwksUnavailableError'
  }
}

export interface JwksCacheOptions {
  uri: string
  /** Whole-fetch deadline (connect, headers and body). */
  timeoutMs: number
  /** Minimum time between two fetches, whatever triggers them (unknown kid, failures). */
  cooldownMs: number
  /** Background refresh period: keys rotate without a request ever waiting on a fetch. */
  refreshMs: number
  /** A JWKS is a few kilobytes; anything near this is hostile or broken. */
  maxBytes?: number
  dispatcher?: Dispatcher
  log?: FastifyBaseLogger
}

type LocalSet = ReturnType<typeof createLocalJWKSet>

/** The `kid` of each key that left the set (undefined for a key published without one). */
export type KeysRemovedListener = (kids: Array<string | undefined>) => void

/**
 * The issuer's JWKS, fetched at start and refreshed in the background.
 *
 * Unlike jose's `createRemoteJWKSet`, a failed refresh never drops keys that
 * were good (an unreachable issuer does not lock out holders of valid tokens),
 * fetches are bounded in time and size, and "no keys at all" is told apart
 * from "no matching key" so the auth layer can answer 503 rather than 401.
 */
export class JwksCache {
  #local: LocalSet | undefined
  #inflight: Promise<void> | undefined
  #lastAttempt = 0
  #timer: NodeJS.Timeout | undefined
  /** Each key held, as published (its JSON): a key whose material changes under the same kid counts as removed. */
  #held = new Map<string, string | undefined>()
  #onKeysRemoved: KeysRemovedListener | undefined
  readonly #opts: Required<Omit<JwksCacheOptions, 'dispatcher' | 'log'>> & Pick<JwksCacheOptions, 'dispatcher' | 'log'>
  /** Fetches attempted so far: lets tests and metrics see that refetching is bounded. */
  fetches = 0
  lastError: Error | undefined
  keysLoadedAt: number | undefined
  /** Keys in the set held now. */
  keys = 0

  constructor (opts: JwksCacheOptions) {
    this.#opts = { maxBytes: 512 * 1024, ...opts }
  }

  get ready (): boolean {
    return this.#local !== undefined
  }

  /** First fetch plus the background refresh. Never throws: an issuer that is down at boot must not stop the server. */
  start (): Promise<void> {
    this.#timer = setInterval(() => { this.refresh().catch(() => {}) }, this.#opts.refreshMs)
    this.#timer.unref()
    return this.refresh().catch(() => {})
  }

  close (): void {
    clearInterval(this.#timer)
  }

  /** Called after a refresh that dropped keys: whatever those keys vouched for must be forgotten. */
  onKeysRemoved (listener: KeysRemovedListener): void {
    this.#onKeysRemoved = listener
  }

  /** One fetch at a time: concurrent callers share it. */
  refresh (): Promise<void> {
    this.#inflight ??= this.#fetch().finally(() => { this.#inflight = undefined })
    return this.#inflight
  }

  #coolingDown (): boolean {
    return Date.now() - this.#lastAttempt < this.#opts.cooldownMs
  }

  #retryAfterSec (): number {
    return Math.max(1, Math.ceil((this.#lastAttempt + this.#opts.cooldownMs - Date.now()) / 1000))
  }

  async #fetch (): Promise<void> {
    this.#lastAttempt = Date.now()
    this.fetches++
    try {
      const jwks = await this.#download()
      this.#local = createLocalJWKSet(jwks)
      this.keysLoadedAt = Date.now()
      this.lastError = undefined
      this.#noteRemovedKeys(jwks)
      this.keys = jwks.keys.length
      if (jwksFetchChannel.hasSubscribers) jwksFetchChannel.publish({ outcome: 'ok', keys: this.keys })
    } catch (err) {
      this.lastError = err as Error
      if (jwksFetchChannel.hasSubscribers) jwksFetchChannel.publish({ outcome: 'error', keys: this.keys })
      this.#opts.log?.warn({ jwksUri: this.#opts.uri, err: { message: (err as Error).message } }, 'JWKS fetch failed; keeping the keys already held')
      throw err
    }
  }

  #noteRemovedKeys (jwks: JSONWebKeySet): void {
    const previous = this.#held
    this.#held = new Map(jwks.keys.map(key => [JSON.stringify(key), key.kid]))
    const removed: Array<string | undefined> = []
    for (const [key, kid] of previous) if (!this.#held.has(key)) removed.push(kid)
    if (removed.length > 0) this.#onKeysRemoved?.(removed)
  }

  async #download (): Promise<JSONWebKeySet> {
    const { uri, timeoutMs, maxBytes, dispatcher } = this.#opts
    const parsed = await fetchBoundedJson(uri, {
      method: 'GET',
      headers: { accept: 'application/json, application/jwk-set+json' },
      timeoutMs,
      maxBytes,
      dispatcher,
      what: 'JWKS'
    })
    if (parsed === null || typeof parsed !== 'object' || !Array.isArray((parsed as JSONWebKeySet).keys)) {
      throw new Error('JWKS has no "keys" array')
    }
    return parsed as JSONWebKeySet
  }

  /** The key lookup for jose: a miss refetches (rotation) unless a fetch happened within the cooldown. */
  readonly getKey: KeyLookup = async (header, token) => {
    if (this.#local === undefined) {
      if (!this.#coolingDown()) await this.refresh().catch(() => {})
      if (this.#local === undefined) throw new JwksUnavailableError(this.#retryAfterSec(), this.lastError)
    }
    try {
      return await this.#local(header, token)
    } catch (err) {
      if (!(err instanceof joseErrors.JWKSNoMatchingKey) || this.#coolingDown()) throw err
      await this.refresh().catch(() => {})
      return await this.#local(header, token)
    }
  }
}

/** Keys held in memory (the development issuer, or a developer's own). */
export function localKeyLookup (jwks: JSONWebKeySet): KeyLookup {
  return createLocalJWKSet(jwks)
}
