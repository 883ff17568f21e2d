import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import { AlphaVantageError, type AlphaVantageClient, type NewsFeed, type NewsQuery } from './alpha-vantage.js'
import type { CacheEntry, ResponseCache } from './cache.js'
import { MemoryQuotaStore, type QuotaStore } from './quota.js'
import { cacheChannel, circuitChannel, quotaChannel, upstreamCallChannel } from '../observability/channels.js'
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
  /** The normalised question (cacheKey): the same for every spelling of it. */
  key: string
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
  /**
   * Share of the daily limit one subject may spend on new questions (default 1:
   * no share). Cached answers and joining another caller's call stay free.
   */
  subjectShare?: number
  /** Upstream calls per minute, across the deployment when the store is shared (default: unpaced). */
  callsPerMinute?: number
  /** How long a call may queue for the pace before it is refused (default 30 s). */
  paceMaxWaitMs?: number
  /** After Alpha Vantage answers "daily limit", ask again after this long (default 30 min), not at midnight UTC. */
  dailyLimitProbeMs?: number
  /** The counters: in memory (default) or shared by every replica (Redis). */
  quotaStore?: QuotaStore
  /** Waits (the pace's queue, retry backoff); tests pass one that moves their clock. */
  sleep?: (ms: number) => Promise<void>
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
const MINUTE_MS = 60_000

export interface QueryOptions {
  readonly signal?: AbortSignal
  /**
   * The caller: it is charged a share of the day's new questions, by its
   * principal where there is one (users and clients in separate namespaces, issue 8 point 8).
   */
  readonly auth?: { readonly subject: string, readonly principal?: string } | null
  /**
   * Where the caller hears of a retry of the upstream call it started (a tool
   * context's MCP logger: the client sees it as notifications/message).
   */
  readonly mcpLog?: { readonly warning: (data: unknown, logger?: string) => void }
}

/** Told of every fresh answer this replica fetched and stored: its question and cache key. */
export type StoredListener = (query: NewsQuery, key: string) => void

/** "14:05:00 UTC": the time of the next try, in plain words. */
function clockTime (ms: number): string {
  return `${new Date(ms).toISOString().slice(11, 19)} UTC`
}

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
 * cache, one upstream call for concurrent identical questions (across
 * replicas when the cache can coalesce), retries only where they can help, a
 * daily quota with a share per subject, a per-minute pace, a circuit
 * breaker, and the last good answer when the upstream fails (stale-if-error).
 *
 * The circuit breaker is per replica, on purpose: it guards this process's
 * path to Alpha Vantage (its connections, its DNS, its network), a replica
 * learns of an outage within `circuitThreshold` failed calls, and sharing it
 * would add a Redis round trip to every upstream call for little: the shared
 * quota, pace and "daily limit" block already stop the calls that would waste
 * the key.
 */
export class NewsService {
  readonly #opts: Required<Omit<NewsServiceOptions, 'log'>> & Pick<NewsServiceOptions, 'log'>
  readonly #inflight = new Map<string, { subject: string | undefined, call: Promise<CacheEntry<NewsFeed>> }>()
  /** The UTC day being counted (days since the epoch) and when it ends. */
  #day = -1
  #resetsAt = ''
  #resetsAtMs = 0
  /** The last count the store told this replica (results show it; the store decides). */
  #used = 0
  /** Until when Alpha Vantage's "daily limit" holds calls back, as last seen. */
  #blockedUntil = 0
  /** The last fetch time turned into ISO 8601: every cache hit of that answer needs the same string. */
  #fetchedAt = { storedAt: -1, iso: '' }
  #failures = 0
  #openUntil = 0
  /** Cached feeds by family, so that a narrower question is cut out of a wider cached feed. */
  readonly #wide = new WideFeedIndex(1024)
  readonly #storedListeners: StoredListener[] = []

  constructor (opts: NewsServiceOptions) {
    this.#opts = {
      nearQuotaRatio: 0.8,
      now: Date.now,
      subjectShare: 1,
      callsPerMinute: Number.POSITIVE_INFINITY,
      paceMaxWaitMs: 30_000,
      dailyLimitProbeMs: 30 * MINUTE_MS,
      quotaStore: new MemoryQuotaStore(),
      sleep: async ms => { await sleep(ms) },
      ...opts
    }
  }

  /**
   * Calls `listener` after each fresh answer this replica fetched from
   * upstream is stored (not for cache hits, nor for answers another replica
   * fetched); returns a function that stops it.
   */
  onStored (listener: StoredListener): () => void {
    this.#storedListeners.push(listener)
    return () => {
      const at = this.#storedListeners.indexOf(listener)
      if (at >= 0) this.#storedListeners.splice(at, 1)
    }
  }

  /** Upstream calls counted today (as this replica last learned it). */
  get used (): number {
    this.#rollDay()
    return this.#used
  }

  get circuitOpen (): boolean {
    return this.#opts.now() < this.#openUntil
  }

  /** New questions one subject may ask per day. */
  get subjectLimit (): number {
    return Math.max(1, Math.floor(this.#opts.dailyLimit * this.#opts.subjectShare))
  }

  #rollDay (): void {
    const day = Math.floor(this.#opts.now() / DAY_MS)
    if (day !== this.#day) {
      this.#day = day
      this.#resetsAtMs = (day + 1) * DAY_MS
      this.#resetsAt = new Date(this.#resetsAtMs).toISOString()
      this.#used = 0
    }
  }

  quota (): QuotaStatus {
    this.#rollDay()
    const { dailyLimit, nearQuotaRatio } = this.#opts
    const remaining = this.#opts.now() < this.#blockedUntil ? 0 : Math.max(0, dailyLimit - this.#used)
    // With a small limit ceil(limit × ratio) is the limit itself (3 × 0.8 → 3):
    // warn no later than when one request is left, so the warning ever shows.
    const nearAt = Math.max(1, Math.min(Math.ceil(dailyLimit * nearQuotaRatio), dailyLimit - 1))
    const state: QuotaState = remaining === 0 ? 'spent' : this.#used >= nearAt ? 'near' : 'ok'
    return { state, used: this.#used, limit: dailyLimit, remaining, resetsAt: this.#resetsAt }
  }

  /**
   * How many new upstream questions may still be asked today, by this
   * subject (its share) or by anyone (without one): what a tool that spends
   * several calls checks before it starts. Asks the store (shared across
   * replicas), so it is exact at the time of asking.
   */
  async quotaRemaining (subject?: string): Promise<number> {
    this.#rollDay()
    const now = this.#opts.now()
    const store = this.#opts.quotaStore
    this.#blockedUntil = await store.blockedUntil()
    if (now < this.#blockedUntil) return 0
    const { used, subjectUsed } = await store.usage(subject, this.#day)
    this.#used = used
    const left = Math.max(0, this.#opts.dailyLimit - used)
    return subject === undefined ? left : Math.min(left, Math.max(0, this.subjectLimit - subjectUsed))
  }

  /** A fresh answer without calling upstream (this question's entry, or a wider cached feed cut to it), if there is one. */
  async cached (query: NewsQuery): Promise<NewsAnswer | undefined> {
    const key = cacheKey(query)
    const entry = await this.#opts.cache.get(key)
    if (entry !== undefined && this.#opts.now() - entry.storedAt < this.#opts.ttlMs) {
      return this.#answer(key, entry.value, entry.storedAt, true, undefined)
    }
    return await this.#fromWider(query, key)
  }

  async #fromWider (query: NewsQuery, key: string): Promise<NewsAnswer | undefined> {
    const wider = await this.#wide.find(query, key, k => this.#opts.cache.get(k), storedAt => this.#opts.now() - storedAt < this.#opts.ttlMs)
    return wider === undefined ? undefined : this.#answer(key, wider.feed, wider.storedAt, true, undefined)
  }

  /** `opts.signal` is read only when the upstream must be asked (a tool context makes it on demand). */
  async query (query: NewsQuery, opts: QueryOptions = {}): Promise<NewsAnswer> {
    const key = cacheKey(query)
    const now = this.#opts.now()
    const entry = await this.#opts.cache.get(key)
    if (entry !== undefined && now - entry.storedAt < this.#opts.ttlMs) {
      if (cacheChannel.hasSubscribers) cacheChannel.publish({ result: 'hit' })
      return this.#answer(key, entry.value, entry.storedAt, true, undefined)
    }
    // A narrower question is cut from a fresh wider feed already cached: no upstream call.
    const wider = await this.#fromWider(query, key)
    if (wider !== undefined) return wider
    if (cacheChannel.hasSubscribers) cacheChannel.publish({ result: 'miss' })

    // Refuse at once when the upstream cannot help: the circuit open, or Alpha Vantage's "daily limit" standing.
    let refusal: AlphaVantageError | undefined
    if (this.circuitOpen) {
      refusal = new AlphaVantageError('unavailable', `Alpha Vantage has been failing; this server stops calling it for ${Math.ceil((this.#openUntil - now) / 1000)} s. Try again after that.`)
    } else if (now < this.#blockedUntil) {
      refusal = this.#dailyLimitReached(this.#blockedUntil)
    }
    if (refusal !== undefined) {
      if (entry !== undefined) return this.#answer(key, entry.value, entry.storedAt, true, refusal.message)
      throw refusal
    }

    try {
      const fresh = await this.#shared(key, query, opts.signal, opts.auth?.principal ?? opts.auth?.subject, opts.mcpLog)
      return this.#answer(key, fresh.value, fresh.storedAt, false, undefined)
    } catch (err) {
      // stale-if-error (RFC 5861 §4, in spirit): the last good answer beats no answer,
      // except when the question itself is wrong.
      if (entry !== undefined && err instanceof AlphaVantageError && err.kind !== 'invalid_request' && opts.signal?.aborted !== true) {
        return this.#answer(key, entry.value, entry.storedAt, true, err.message)
      }
      throw err
    }
  }

  #answer (key: string, feed: NewsFeed, storedAt: number, cached: boolean, staleReason: string | undefined): NewsAnswer {
    if (this.#fetchedAt.storedAt !== storedAt) this.#fetchedAt = { storedAt, iso: new Date(storedAt).toISOString() }
    if (staleReason !== undefined && cacheChannel.hasSubscribers) cacheChannel.publish({ result: 'stale' })
    return {
      key,
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
   * promise (and, through the cache's coalescing, on another replica's call).
   * Only the caller that starts the call is charged; a caller's cancel stops
   * its wait, not the shared call.
   */
  async #shared (key: string, query: NewsQuery, signal: AbortSignal | undefined, subject: string | undefined, mcpLog?: QueryOptions['mcpLog']): Promise<CacheEntry<NewsFeed>> {
    let running = this.#inflight.get(key)
    if (running === undefined) {
      const fetch = async (): Promise<CacheEntry<NewsFeed>> => {
        const feed = await this.#fetchWithRetry(query, subject, 0, mcpLog)
        const entry = { value: feed, storedAt: this.#opts.now(), bytes: feed.bytes }
        await this.#opts.cache.set(key, entry)
        for (const listener of this.#storedListeners) {
          try {
            listener(query, key)
          } catch (err) {
            this.#opts.log?.error({ err }, 'news: a stored-answer listener failed')
          }
        }
        return entry
      }
      const { cache } = this.#opts
      const call = (cache.coalesce === undefined ? fetch() : cache.coalesce(key, fetch))
        .then(entry => {
          // Wherever it was fetched (here or, coalesced, on another replica), narrower questions may be cut from it.
          this.#wide.remember(key, query)
          return entry
        })
        .finally(() => this.#inflight.delete(key))
      running = { subject, call }
      this.#inflight.set(key, running)
    }
    const { call } = running
    const joined = subject !== running.subject
    const wait = signal === undefined
      ? call
      : new Promise<CacheEntry<NewsFeed>>((resolve, reject) => {
        const onAbort = (): void => reject(new AlphaVantageError('unavailable', 'The request was cancelled.'))
        if (signal.aborted) return onAbort()
        signal.addEventListener('abort', onAbort, { once: true })
        call.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
      })
    try {
      return await wait
    } catch (err) {
      // The caller that started the call had used its share: that is no answer for someone else.
      if (joined && err instanceof AlphaVantageError && err.subjectShare) return await this.#shared(key, query, signal, subject, mcpLog)
      throw err
    }
  }

  #dailyLimitReached (until: number): AlphaVantageError {
    return new AlphaVantageError('daily_limit', `Alpha Vantage's daily limit for this server's API key is reached; the next try is at ${clockTime(until)} (${new Date(until).toISOString()}). Questions asked before are still answered from the cache.`)
  }

  /** Waits for a slot in the per-minute pace, briefly: past `paceMaxWaitMs` the call is refused with the time of the next slot. */
  async #pace (): Promise<void> {
    const { callsPerMinute, paceMaxWaitMs, quotaStore, now } = this.#opts
    if (callsPerMinute === Number.POSITIVE_INFINITY) return
    const started = now()
    for (;;) {
      const t = now()
      const window = Math.floor(t / MINUTE_MS)
      if (await quotaStore.pace(window) <= callsPerMinute) return
      const next = (window + 1) * MINUTE_MS
      if (next - started > paceMaxWaitMs) {
        throw new AlphaVantageError('rate_limited', `Alpha Vantage's rate limit (${callsPerMinute} requests a minute for this server) is reached; the next try is at ${clockTime(next)}.`)
      }
      // A little spread, so that the queued calls do not all land on the window's first millisecond.
      await this.#opts.sleep(next - t + Math.floor(Math.random() * 250))
    }
  }

  /** Counts the call against the day (and the subject's share, on a first attempt); throws when either is spent. */
  async #take (subject: string | undefined): Promise<void> {
    this.#rollDay()
    const { quotaStore, dailyLimit } = this.#opts
    const taken = await quotaStore.take(subject, { day: this.#day, resetsAt: this.#resetsAtMs, dailyLimit, subjectLimit: this.subjectLimit })
    this.#used = taken.used
    if (quotaChannel.hasSubscribers) quotaChannel.publish({ used: this.#used, remaining: Math.max(0, dailyLimit - this.#used), limit: dailyLimit })
    if (taken.ok) return
    if (taken.refusal === 'daily') {
      throw new AlphaVantageError('daily_limit', `This server has used its ${dailyLimit} Alpha Vantage requests for today (daily limit); new questions can be answered after ${this.#resetsAt}. Questions asked before are still answered from the cache.`)
    }
    const err = new AlphaVantageError('daily_limit', `You have used your share of this server's Alpha Vantage requests for today (daily limit: ${this.subjectLimit} new questions per user out of the server's ${dailyLimit}); new questions can be answered after ${this.#resetsAt}. Questions asked before, by anyone, are still answered from the cache.`)
    err.subjectShare = true
    throw err
  }

  async #fetchWithRetry (query: NewsQuery, subject: string | undefined, attempt: number, mcpLog: QueryOptions['mcpLog']): Promise<NewsFeed> {
    const { quotaStore, now } = this.#opts
    this.#blockedUntil = await quotaStore.blockedUntil()
    if (now() < this.#blockedUntil) throw this.#dailyLimitReached(this.#blockedUntil)
    await this.#pace()
    // A retry is the same question: the subject was charged for it once.
    await this.#take(attempt === 0 ? subject : undefined)
    const startedAt = performance.now()
    try {
      const feed = await this.#opts.client.newsSentiment(query)
      if (upstreamCallChannel.hasSubscribers) upstreamCallChannel.publish({ outcome: 'ok', durationMs: performance.now() - startedAt })
      this.#failures = 0
      if (this.#openUntil !== 0) {
        this.#openUntil = 0
        if (circuitChannel.hasSubscribers) circuitChannel.publish({ state: 'closed' })
      }
      return feed
    } catch (err) {
      if (upstreamCallChannel.hasSubscribers) upstreamCallChannel.publish({ outcome: err instanceof AlphaVantageError ? err.kind : 'bug', durationMs: performance.now() - startedAt })
      // Anything else is a bug, not an upstream answer: neither retried nor counted.
      if (!(err instanceof AlphaVantageError)) throw err
      if (err.kind === 'daily_limit') {
        // Alpha Vantage says the day's quota is gone. It does not say when its
        // day resets: hold new calls back, and probe again after a while.
        const until = now() + this.#opts.dailyLimitProbeMs
        this.#blockedUntil = until
        await quotaStore.block(until, this.#opts.dailyLimitProbeMs)
        throw this.#dailyLimitReached(until)
      }
      if (err.kind === 'rate_limited') {
        throw new AlphaVantageError('rate_limited', `Alpha Vantage's rate limit for this server's API key is reached; the next try is at ${clockTime((Math.floor(now() / MINUTE_MS) + 1) * MINUTE_MS)}.`)
      }
      if (err.retryable && attempt < this.#opts.retries && this.quota().state !== 'spent') {
        mcpLog?.warning({ message: `Alpha Vantage failed (${err.message}); retrying (attempt ${attempt + 2} of ${this.#opts.retries + 1})` }, 'news')
        // Exponential backoff with full jitter.
        await this.#opts.sleep(Math.random() * this.#opts.retryBaseMs * 2 ** attempt)
        return await this.#fetchWithRetry(query, subject, attempt + 1, mcpLog)
      }
      // The upstream is broken (not just saying no): that is what the circuit counts.
      if (err.kind === 'unavailable' || err.kind === 'bad_response') this.#failed(err)
      throw err
    }
  }

  #failed (err: AlphaVantageError): void {
    // Consecutive failures only: every success above resets the count.
    this.#failures++
    if (this.#failures >= this.#opts.circuitThreshold) {
      this.#openUntil = this.#opts.now() + this.#opts.circuitCooldownMs
      this.#failures = 0
      if (circuitChannel.hasSubscribers) circuitChannel.publish({ state: 'open' })
      this.#opts.log?.warn({ cooldownMs: this.#opts.circuitCooldownMs, reason: err.message }, 'Alpha Vantage circuit opened')
    }
  }
}
