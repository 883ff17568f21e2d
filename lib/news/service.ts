import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import { AlphaVantageError, type AlphaVantageClient, type NewsFeed, type NewsQuery } from './alpha-vantage.js'
import type { ResponseCache } from './cache.js'
import { WideFeedIndex } from './feed-window.js'

export type QuotaState = 'ok' | 'near' | 'spent'

export interface QuotaStatus {
  state: QuotaState
  used: number
  limit: number
  remaining: number
  /** When the count starts again (next midnight UTC), ISO 8601. */
  resetsAt: string
}

export interface NewsAnswer {
  feed: NewsFeed
  /** When Alpha Vantage produced this answer, ISO 8601. */
  fetchedAt: string
  ageSeconds: number
  /** From the cache (no upstream call for this request). */
  cached: boolean
  /** Served past its freshness because the upstream failed; `staleReason` says why. */
  stale: boolean
  staleReason: string | undefined
  quota: QuotaStatus
}

export interface NewsServiceOptions {
  client: Pick<AlphaVantageClient, 'newsSentiment'>
  cache: ResponseCache<NewsFeed>
  /** How long an answer is served without asking upstream again. */
  ttlMs: number
  /** Upstream calls allowed per UTC day (Alpha Vantage's free tier: 25). */
  dailyLimit: number
  /** Share of the daily limit from which results warn (default 0.8). */
  nearQuotaRatio?: number
  /** Extra attempts after a timeout or a 5xx. */
  retries: number
  retryBaseMs: number
  /** Consecutive failed calls that open the circuit. */
  circuitThreshold: number
  circuitCooldownMs: number
  log?: FastifyBaseLogger
  now?: () => number
}

const DAY_MS = 86_400_000

/** The key of a query: the same question, however it was spelled, is one cache entry. */
export function cacheKey (query: NewsQuery): string {
  // Tickers and topics cannot hold '|' or ',' (their schemas say so).
  return `${sortedList(query.tickers, true)}|${sortedList(query.topics, false)}|${query.timeFrom ?? ''}|${query.timeTo ?? ''}|${query.sort ?? 'LATEST'}|${query.limit ?? 50}`
}

function sortedList (items: string[] | undefined, upper: boolean): string {
  if (items === undefined || items.length === 0) return ''
  if (items.length === 1) return upper ? (items[0] as string).toUpperCase() : items[0] as string
  return items.map(i => upper ? i.toUpperCase() : i).sort().join(',')
}

/**
 * NEWS_SENTIMENT for every session of every user, on one API key: a shared
 * cache, one upstream call for concurrent identical questions, retries only
 * where they can help, a daily quota count, a circuit breaker, and the last
 * good answer when the upstream fails (stale-if-error).
 */
export class NewsService {
  readonly #opts: Required<Omit<NewsServiceOptions, 'log'>> & Pick<NewsServiceOptions, 'log'>
  readonly #inflight = new Map<string, Promise<{ feed: NewsFeed, storedAt: number }>>()
  /** The UTC day being counted (days since the epoch) and when it ends. */
  #day = -1
  #resetsAt = ''
  #used = 0
  /** The last fetch time turned into ISO 8601: every cache hit of that answer needs the same string. */
  #fetchedAt = { storedAt: -1, iso: '' }
  #failures = 0
  #openUntil = 0
  /** Cached feeds by family, so that a narrower question is cut out of a wider cached feed. */
  readonly #wide = new WideFeedIndex(1024)

  constructor (opts: NewsServiceOptions) {
    this.#opts = { nearQuotaRatio: 0.8, now: Date.now, ...opts }
  }

  /** Upstream calls counted today. */
  get used (): number {
    this.#rollDay()
    return this.#used
  }

  get circuitOpen (): boolean {
    return this.#opts.now() < this.#openUntil
  }

  #rollDay (): void {
    const day = Math.floor(this.#opts.now() / DAY_MS)
    if (day !== this.#day) {
      this.#day = day
      this.#resetsAt = new Date((day + 1) * DAY_MS).toISOString()
      this.#used = 0
    }
  }

  quota (): QuotaStatus {
    this.#rollDay()
    const { dailyLimit, nearQuotaRatio } = this.#opts
    const remaining = Math.max(0, dailyLimit - this.#used)
    // With a small limit ceil(limit × ratio) is the limit itself (3 × 0.8 → 3):
    // warn no later than when one request is left, so the warning ever shows.
    const nearAt = Math.max(1, Math.min(Math.ceil(dailyLimit * nearQuotaRatio), dailyLimit - 1))
    const state: QuotaState = remaining === 0 ? 'spent' : this.#used >= nearAt ? 'near' : 'ok'
    return { state, used: this.#used, limit: dailyLimit, remaining, resetsAt: this.#resetsAt }
  }

  /** A fresh answer without calling upstream (this question's entry, or a wider cached feed cut to it), if there is one. */
  async cached (query: NewsQuery): Promise<NewsAnswer | undefined> {
    const key = cacheKey(query)
    const entry = await this.#opts.cache.get(key)
    if (entry !== undefined && this.#opts.now() - entry.storedAt < this.#opts.ttlMs) {
      return this.#answer(entry.value, entry.storedAt, true, undefined)
    }
    return await this.#fromWider(query, key)
  }

  async #fromWider (query: NewsQuery, key: string): Promise<NewsAnswer | undefined> {
    const wider = await this.#wide.find(query, key, k => this.#opts.cache.get(k), storedAt => this.#opts.now() - storedAt < this.#opts.ttlMs)
    return wider === undefined ? undefined : this.#answer(wider.feed, wider.storedAt, true, undefined)
  }

  /** `opts.signal` is read only when the upstream must be asked (a tool context makes it on demand). */
  async query (query: NewsQuery, opts: { readonly signal?: AbortSignal } = {}): Promise<NewsAnswer> {
    const key = cacheKey(query)
    const now = this.#opts.now()
    const entry = await this.#opts.cache.get(key)
    if (entry !== undefined && now - entry.storedAt < this.#opts.ttlMs) {
      return this.#answer(entry.value, entry.storedAt, true, undefined)
    }
    const wider = await this.#fromWider(query, key)
    if (wider !== undefined) return wider

    // Refuse to call upstream when it cannot help: quota spent, or the circuit open.
    const quota = this.quota()
    let refusal: AlphaVantageError | undefined
    if (quota.state === 'spent') {
      refusal = new AlphaVantageError('daily_limit', `This server has used its ${quota.limit} Alpha Vantage requests for today; new questions can be answered after ${quota.resetsAt}.`)
    } else if (this.circuitOpen) {
      refusal = new AlphaVantageError('unavailable', `Alpha Vantage has been failing; this server stops calling it for ${Math.ceil((this.#openUntil - now) / 1000)} s. Try again after that.`)
    }
    if (refusal !== undefined) {
      if (entry !== undefined) return this.#answer(entry.value, entry.storedAt, true, refusal.message)
      throw refusal
    }

    try {
      const fresh = await this.#shared(key, query, opts.signal)
      return this.#answer(fresh.feed, fresh.storedAt, false, undefined)
    } catch (err) {
      // stale-if-error (RFC 5861 §4, in spirit): the last good answer beats no answer,
      // except when the question itself is wrong.
      if (entry !== undefined && err instanceof AlphaVantageError && err.kind !== 'invalid_request' && opts.signal?.aborted !== true) {
        return this.#answer(entry.value, entry.storedAt, true, err.message)
      }
      throw err
    }
  }

  #answer (feed: NewsFeed, storedAt: number, cached: boolean, staleReason: string | undefined): NewsAnswer {
    if (this.#fetchedAt.storedAt !== storedAt) this.#fetchedAt = { storedAt, iso: new Date(storedAt).toISOString() }
    return {
      feed,
      fetchedAt: this.#fetchedAt.iso,
      ageSeconds: Math.max(0, Math.round((this.#opts.now() - storedAt) / 1000)),
      cached,
      stale: staleReason !== undefined,
      staleReason,
      quota: this.quota()
    }
  }

  /**
   * One upstream call per key at a time: concurrent callers wait on the same
   * promise. A caller's cancel stops its wait, not the shared call.
   */
  #shared (key: string, query: NewsQuery, signal: AbortSignal | undefined): Promise<{ feed: NewsFeed, storedAt: number }> {
    let call = this.#inflight.get(key)
    if (call === undefined) {
      call = this.#fetchWithRetry(query).then(async feed => {
        const storedAt = this.#opts.now()
        await this.#opts.cache.set(key, { value: feed, storedAt, bytes: feed.bytes })
        this.#wide.remember(key, query)
        return { feed, storedAt }
      }).finally(() => this.#inflight.delete(key))
      this.#inflight.set(key, call)
    }
    if (signal === undefined) return call
    return new Promise((resolve, reject) => {
      const onAbort = (): void => reject(new AlphaVantageError('unavailable', 'The request was cancelled.'))
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, { once: true })
      call.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
    })
  }

  async #fetchWithRetry (query: NewsQuery, attempt = 0): Promise<NewsFeed> {
    this.#rollDay()
    this.#used++
    try {
      const feed = await this.#opts.client.newsSentiment(query)
      this.#failures = 0
      return feed
    } catch (err) {
      // Anything else is a bug, not an upstream answer: neither retried nor counted.
      if (!(err instanceof AlphaVantageError)) throw err
      if (err.kind === 'daily_limit') {
        // Alpha Vantage says the day's quota is gone: believe it, stop asking until tomorrow.
        this.#used = Math.max(this.#used, this.#opts.dailyLimit)
      }
      if (err.retryable && attempt < this.#opts.retries && this.quota().state !== 'spent') {
        // Exponential backoff with full jitter.
        await sleep(Math.random() * this.#opts.retryBaseMs * 2 ** attempt)
        return await this.#fetchWithRetry(query, attempt + 1)
      }
      // The upstream is broken (not just saying no): that is what the circuit counts.
      if (err.kind === 'unavailable' || err.kind === 'bad_response') this.#failed(err)
      throw err
    }
  }

  #failed (err: AlphaVantageError): void {
    this.#failures++
    if (this.#failures >= this.#opts.circuitThreshold) {
      this.#openUntil = this.#opts.now() + this.#opts.circuitCooldownMs
      this.#failures = 0
      this.#opts.log?.warn({ cooldownMs: this.#opts.circuitCooldownMs, reason: err.message }, 'Alpha Vantage circuit opened')
    }
  }
}
