/**
 * A least-recently-used map bounded in entries and in (estimated) bytes:
 * what the news cache and the tools' memos keep, so that each has one real
 * memory bound. A Map's insertion order is the recency order.
 */
export class BoundedLru<V> {
  readonly #entries = new Map<string, { value: V, bytes: number }>()
  #bytes = 0

  constructor (readonly maxEntries: number, readonly maxBytes: number) {}

  get size (): number {
    return this.#entries.size
  }

  get bytes (): number {
    return this.#bytes
  }

  /** The value, made the most recently used. */
  get (key: string): V | undefined {
    const entry = this.#entries.get(key)
    if (entry === undefined) return undefined
    this.#entries.delete(key)
    this.#entries.set(key, entry)
    return entry.value
  }

  delete (key: string): void {
    const entry = this.#entries.get(key)
    if (entry === undefined) return
    this.#entries.delete(key)
    this.#bytes -= entry.bytes
  }

  /** Keeps the value unless it alone exceeds the byte bound; evicts the least recently used until both bounds hold. */
  set (key: string, value: V, bytes: number): void {
    this.delete(key)
    if (bytes > this.maxBytes) return
    this.#entries.set(key, { value, bytes })
    this.#bytes += bytes
    for (const [oldest, old] of this.#entries) {
      if (this.#entries.size <= this.maxEntries && this.#bytes <= this.maxBytes) break
      this.#entries.delete(oldest)
      this.#bytes -= old.bytes
    }
  }
}
