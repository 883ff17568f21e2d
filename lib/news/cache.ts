import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { FastifyBaseLogger } from 'fastify'
import { BoundedLru } from './lru.js'

/**
 * The response cache behind the news service. A small async interface so a
 * shared store (Redis, say) can replace the in-memory one without the service
 * changing: entries carry their own timestamps, the store only keeps them.
 */
export interface CacheEntry<V> {
  value: V
  /** When the upstream answered (ms since the epoch). */
  storedAt: number
  /** Approximate size, for the byte bound. */
  bytes: number
}

export interface ResponseCache<V> {
  get: (key: string) => Promise<CacheEntry<V> | undefined>
  set: (key: string, entry: CacheEntry<V>) => Promise<void>
  /** How long an entry is kept at most (fresh or stale), in ms. */
  readonly retentionMs: number
  /**
   * One `fetch` per key at a time across every process sharing this cache:
   * the others wait for its entry (or its error). Absent: this process's own
   * coalescing is the only one (the in-memory cache has nobody to share with).
   */
  coalesce?: (key: string, fetch: () => Promise<CacheEntry<V>>) => Promise<CacheEntry<V>>
}

export interface MemoryCacheOptions {
  maxEntries: number
  maxBytes: number
  /** Entries older than this are gone (they may still serve as stale answers until then). */
  retentionMs: number
  /** The clock that `storedAt` was read from (default Date.now): the news service's own, when it has one. */
  now?: () => number
}

/** In-memory LRU bounded in entries and bytes. */
export class MemoryResponseCache<V> implements ResponseCache<V> {
  readonly #lru: BoundedLru<CacheEntry<V>>
  readonly #opts: Required<MemoryCacheOptions>

  constructor (opts: MemoryCacheOptions) {
    this.#opts = { now: Date.now, ...opts }
    this.#lru = new BoundedLru(opts.maxEntries, opts.maxBytes)
  }

  get retentionMs (): number {
    return this.#opts.retentionMs
  }

  get size (): number {
    return this.#lru.size
  }

  get bytes (): number {
    return this.#lru.bytes
  }

  async get (key: string): Promise<CacheEntry<V> | undefined> {
    return this.getNow(key)
  }

  /** The same as get(), without a promise: for a caller that holds this cache as its local copy. */
  getNow (key: string): CacheEntry<V> | undefined {
    const entry = this.#lru.get(key)
    if (entry === undefined) return undefined
    if (this.#opts.now() - entry.storedAt > this.#opts.retentionMs) {
      this.#lru.delete(key)
      return undefined
    }
    return entry
  }

  async set (key: string, entry: CacheEntry<V>): Promise<void> {
    this.setNow(key, entry)
  }

  setNow (key: string, entry: CacheEntry<V>): void {
    // An entry larger than the whole budget is not kept at all.
    this.#lru.set(key, entry, entry.bytes)
  }
}

/** What the Redis stores need of the app's Redis connection (plugins/redis.ts's SharedRedis has it). */
export interface RedisLink {
  readonly client: Redis
  /** A connection for SUBSCRIBE only. */
  readonly subscriber: Redis
  /** Connected right now: when not, callers degrade at once instead of waiting. */
  readonly available: boolean
  key: (...parts: string[]) => string
}

export interface RedisCacheOptions {
  redis: RedisLink
  maxEntries: number
  maxBytes: number
  retentionMs: number
  /** How long an entry is fresh (the news TTL): a fresh local copy is served without asking Redis. */
  freshMs: number
  /** How long one process may hold a question's lock (longer than its longest upstream call, retries and pace included). */
  lockMs: number
  /** Turns a coalesced call's published failure back into the error its waiters throw. */
  reviveError: (failure: { kind?: string, message: string }) => Error
  /** The failure of a fetch that the other processes should not share (they ask themselves instead). */
  isPrivateFailure: (err: unknown) => boolean
  log?: Pick<FastifyBaseLogger, 'warn' | 'info'>
  now?: () => number
}

/*
 * Sets an entry and keeps the deployment's bounds in one atomic step (an
 * entry over the byte bound is not kept, and drops the value it replaces): an
 * index of entries by write time (a sorted set) and their sizes (a hash);
 * the oldest written go first when either bound is passed. Every key carries
 * the retention as its TTL, so nothing outlives it even if the index is lost.
 * KEYS: entry, index, sizes. ARGV: value, bytes, now, retention, max entries, max bytes.
 * (Evicted entries are named by the index, not in KEYS: a single Redis, not a cluster.)
 */
const SET_BOUNDED = `
if tonumber(ARGV[2]) > tonumber(ARGV[6]) then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[2], KEYS[1])
  redis.call('HDEL', KEYS[3], KEYS[1])
  return -1
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[3], KEYS[1])
redis.call('HSET', KEYS[3], KEYS[1], ARGV[2])
for _, k in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', tonumber(ARGV[3]) - tonumber(ARGV[4]))) do
  redis.call('ZREM', KEYS[2], k)
  redis.call('HDEL', KEYS[3], k)
end
local total = 0
for _, b in ipairs(redis.call('HVALS', KEYS[3])) do total = total + tonumber(b) end
while redis.call('ZCARD', KEYS[2]) > tonumber(ARGV[5]) or total > tonumber(ARGV[6]) do
  local k = redis.call('ZPOPMIN', KEYS[2])[1]
  total = total - tonumber(redis.call('HGET', KEYS[3], k) or '0')
  redis.call('HDEL', KEYS[3], k)
  redis.call('DEL', k)
end
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[3], ARGV[4])
return total
`

/** Deletes the lock only if this process still holds it (its token), never another's after an expiry. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`

interface Woken { failure?: { kind?: string, message: string } }

type BoundedRedis = Redis & {
  newsCacheSet: (entry: string, index: string, sizes: string, value: string, bytes: number, now: number, retention: number, maxEntries: number, maxBytes: number) => Promise<number>
  newsLockRelease: (lock: string, token: string) => Promise<number>
}

/**
 * The news cache shared by every replica through Redis, with this replica's
 * own in-memory copy in front of it:
 *
 * - a fresh local copy is served with no Redis round trip. It cannot be out
 *   of date: an entry is replaced only by a new upstream answer, and nobody
 *   asks upstream while the entry is fresh; once it is not fresh, Redis is
 *   asked (one GET) and a newer answer from another replica is taken;
 * - Redis keeps the deployment's bounds (entries, bytes of what it stores)
 *   with the retention as every key's TTL;
 * - coalescing across replicas: the first to ask takes a lock (SET NX PX),
 *   the others wait for its message on a pub/sub channel, then read the
 *   entry; a lock whose holder died expires and the next waiter takes it;
 * - when Redis fails, every operation falls back to the local copy (a miss
 *   asks upstream from this replica): nothing throws, and when the connection
 *   returns the next operation uses Redis again.
 */
export class RedisResponseCache<V> implements ResponseCache<V> {
  readonly #opts: RedisCacheOptions & { now: () => number }
  readonly #local: MemoryResponseCache<V>
  readonly #channel: string
  readonly #waiters = new Map<string, Set<(woken: Woken) => void>>()
  #subscribed: Promise<void> | undefined
  #listening = false
  #degraded = false

  constructor (opts: RedisCacheOptions) {
    this.#opts = { now: Date.now, ...opts }
    this.#local = new MemoryResponseCache<V>({ maxEntries: opts.maxEntries, maxBytes: opts.maxBytes, retentionMs: opts.retentionMs, now: this.#opts.now })
    this.#channel = opts.redis.key('news', 'answered')
    const client = opts.redis.client as BoundedRedis
    if (typeof client.newsCacheSet !== 'function') {
      client.defineCommand('newsCacheSet', { numberOfKeys: 3, lua: SET_BOUNDED })
      client.defineCommand('newsLockRelease', { numberOfKeys: 1, lua: RELEASE })
    }
  }

  get retentionMs (): number {
    return this.#opts.retentionMs
  }

  /** This replica's copy (entries and bytes it holds). */
  get local (): MemoryResponseCache<V> {
    return this.#local
  }

  #entryKey (key: string): string {
    return this.#opts.redis.key('news', 'entry', key)
  }

  /** Logs the first failure of an outage, and the recovery: not one line per request. */
  #failed (err: unknown): void {
    if (this.#degraded) return
    this.#degraded = true
    this.#opts.log?.warn({ err: { message: (err as Error).message } }, 'news cache: Redis failed; answering from this replica\'s memory')
  }

  #recovered (): void {
    if (!this.#degraded) return
    this.#degraded = false
    this.#opts.log?.info('news cache: Redis is back; the cache is shared again')
  }

  async get (key: string): Promise<CacheEntry<V> | undefined> {
    const local = this.#local.getNow(key)
    const now = this.#opts.now()
    if (local !== undefined && now - local.storedAt < this.#opts.freshMs) return local
    const remote = await this.#remote(key, local)
    return remote ?? local
  }

  /** The entry in Redis when it is newer than `local` (parsed only then); undefined otherwise or when Redis fails. */
  async #remote (key: string, local: CacheEntry<V> | undefined): Promise<CacheEntry<V> | undefined> {
    if (!this.#opts.redis.available) return undefined
    let raw: string | null
    try {
      raw = await this.#opts.redis.client.get(this.#entryKey(key))
    } catch (err) {
      this.#failed(err)
      return undefined
    }
    this.#recovered()
    if (raw === null) return undefined
    // "storedAt bytes json": the time is read without parsing a feed that may be megabytes.
    const space = raw.indexOf(' ')
    const storedAt = Number(raw.slice(0, space))
    if (local !== undefined && local.storedAt >= storedAt) return undefined
    const second = raw.indexOf(' ', space + 1)
    const entry: CacheEntry<V> = { storedAt, bytes: Number(raw.slice(space + 1, second)), value: JSON.parse(raw.slice(second + 1)) as V }
    this.#local.setNow(key, entry)
    return entry
  }

  async set (key: string, entry: CacheEntry<V>): Promise<void> {
    this.#local.setNow(key, entry)
    if (!this.#opts.redis.available) return
    const { maxEntries, maxBytes, retentionMs, redis } = this.#opts
    // The bounds count what a replica keeps once it reads the entry (`bytes`),
    // as the in-memory cache does; the JSON that Redis holds is smaller.
    const value = entry.bytes > maxBytes ? '' : `${entry.storedAt} ${entry.bytes} ${JSON.stringify(entry.value)}`
    try {
      await (redis.client as BoundedRedis).newsCacheSet(this.#entryKey(key), redis.key('news', 'index'), redis.key('news', 'sizes'), value, entry.bytes, entry.storedAt, retentionMs, maxEntries, maxBytes)
      this.#recovered()
    } catch (err) {
      this.#failed(err)
    }
  }

  async coalesce (key: string, fetch: () => Promise<CacheEntry<V>>): Promise<CacheEntry<V>> {
    const { redis } = this.#opts
    const lock = redis.key('news', 'lock', key)
    const token = randomUUID()
    for (;;) {
      if (!redis.available) return await fetch()
      // Listening before the lock is tried: an answer published in between is not missed.
      const listening = this.#listen(key)
      try {
        let taken: string | null
        try {
          await this.#subscribe()
          taken = await redis.client.set(lock, token, 'PX', this.#opts.lockMs, 'NX')
        } catch (err) {
          this.#failed(err)
          return await fetch()
        }
        if (taken === 'OK') return await this.#holdLock(key, lock, token, fetch)
        const entry = await this.#wait(key, listening.woken)
        if (entry !== undefined) return entry
        // No answer: the holder died (its lock expired) or failed privately. Take the lock in turn.
      } finally {
        listening.stop()
      }
    }
  }

  async #holdLock (key: string, lock: string, token: string, fetch: () => Promise<CacheEntry<V>>): Promise<CacheEntry<V>> {
    let woken: Woken = {}
    try {
      return await fetch()
    } catch (err) {
      if (!this.#opts.isPrivateFailure(err)) {
        woken = { failure: { kind: (err as { kind?: string }).kind, message: (err as Error).message } }
      }
      throw err
      /* c8 ignore next -- V8 counts a branch for the finally reached from the catch's rethrow */
    } finally {
      const client = this.#opts.redis.client as BoundedRedis
      // Release first, then wake: a woken waiter that finds no entry may take the lock at once.
      await client.newsLockRelease(lock, token)
        .then(async () => await client.publish(this.#channel, JSON.stringify({ key, ...woken })))
        .catch((err: unknown) => this.#failed(err))
    }
  }

  /** Registers for the lock holder's message on `key`; wakes with nothing after the lock's lifetime. */
  #listen (key: string): { woken: Promise<Woken>, stop: () => void } {
    let wake!: (woken: Woken) => void
    const woken = new Promise<Woken>(resolve => { wake = resolve })
    let set = this.#waiters.get(key)
    if (set === undefined) {
      set = new Set()
      this.#waiters.set(key, set)
    }
    set.add(wake)
    const timer = setTimeout(() => wake({}), this.#opts.lockMs)
    const waiters = set
    return {
      woken,
      stop: () => {
        clearTimeout(timer)
        waiters.delete(wake)
        if (waiters.size === 0) this.#waiters.delete(key)
      }
    }
  }

  /** The entry once the holder says it landed (or it already has); undefined when the wait ends without one. */
  async #wait (key: string, woken: Promise<Woken>): Promise<CacheEntry<V> | undefined> {
    // The answer may have landed between our GET and our SET NX (a race a test cannot time reliably).
    const early = await this.#freshRemote(key)
    /* c8 ignore next */
    if (early !== undefined) return early
    const message = await woken
    if (message.failure !== undefined) throw this.#opts.reviveError(message.failure)
    return await this.#freshRemote(key)
  }

  async #freshRemote (key: string): Promise<CacheEntry<V> | undefined> {
    const entry = await this.#remote(key, this.#local.getNow(key)) ?? this.#local.getNow(key)
    return entry !== undefined && this.#opts.now() - entry.storedAt < this.#opts.freshMs ? entry : undefined
  }

  async #subscribe (): Promise<void> {
    if (this.#subscribed === undefined) {
      const subscriber = this.#opts.redis.subscriber
      if (!this.#listening) {
        this.#listening = true
        subscriber.on('message', (channel: string, message: string) => {
          // The subscriber connection is the app's: other stores may listen on their own channels.
          /* c8 ignore next */
          if (channel !== this.#channel) return
          const { key, failure } = JSON.parse(message) as { key: string, failure?: Woken['failure'] }
          for (const wake of this.#waiters.get(key) ?? []) wake({ failure })
        })
      }
      this.#subscribed = subscriber.subscribe(this.#channel).then(() => undefined)
      // A failed subscription is tried again next time.
      this.#subscribed.catch(() => { this.#subscribed = undefined })
    }
    await this.#subscribed
  }
}
