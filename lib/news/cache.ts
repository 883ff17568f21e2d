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
}

export interface MemoryCacheOptions {
  maxEntries: number
  maxBytes: number
  /** Entries older than this are gone (they may still serve as stale answers until then). */
  retentionMs: number
  /** The clock that `storedAt` was read from (default Date.now): the news service's own, when it has one. */
  now?: () => number
}

/** In-memory LRU bounded in entries and bytes; a Map's insertion order is the recency order. */
export class MemoryResponseCache<V> implements ResponseCache<V> {
  readonly #entries = new Map<string, CacheEntry<V>>()
  readonly #opts: Required<MemoryCacheOptions>
  #bytes = 0

  constructor (opts: MemoryCacheOptions) {
    this.#opts = { now: Date.now, ...opts }
  }

  get retentionMs (): number {
    return this.#opts.retentionMs
  }

  get size (): number {
    return this.#entries.size
  }

  get bytes (): number {
    return this.#bytes
  }

  async get (key: string): Promise<CacheEntry<V> | undefined> {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    this.#entries.delete(key)
    if (this.#opts.now() - entry.storedAt > this.#opts.retentionMs) {
      this.#bytes -= entry.bytes
      return undefined
    }
    this.#entries.set(key, entry) // most recently used goes last
    return entry
  }

  async set (key: string, entry: CacheEntry<V>): Promise<void> {
    const previous = this.#entries.get(key)
    if (previous !== undefined) {
      this.#entries.delete(key)
      this.#bytes -= previous.bytes
    }
    // An entry larger than the whole budget is not kept at all.
    if (entry.bytes > this.#opts.maxBytes) return
    this.#entries.set(key, entry)
    this.#bytes += entry.bytes
    for (const [oldest, old] of this.#entries) {
      if (this.#entries.size <= this.#opts.maxEntries && this.#bytes <= this.#opts.maxBytes) break
      this.#entries.delete(oldest)
      this.#bytes -= old.bytes
    }
  }
}
