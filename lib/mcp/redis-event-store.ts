import type { Redis } from 'ioredis'
import type { EventStore, EventStoreOptions, StoredEvent } from './event-store.js'
import type { RedisLink } from './redis-session-store.js'

export interface RedisEventStoreOptions extends EventStoreOptions {
  /** How long a stream's events stay after its last event (the session idle TTL is a good value). */
  ttlMs: number
  /** A write that failed (the event is lost for a later resume; nothing else breaks). */
  onError: (err: Error) => void
}

// One Redis Stream per SSE stream, `<p>events:<session>:<stream>`, with the
// event's sequence as the entry id (0-<seq>): bounded (MAXLEN, exact: streams are short), expiring
// (PEXPIRE), and announced on `<p>events` so that a replica following the
// stream for a resumed client forwards it at once.
const APPEND = `local key = KEYS[1]
redis.call('XADD', key, 'MAXLEN', ARGV[1], '0-' .. ARGV[2], 'd', ARGV[3], 'f', ARGV[4])
redis.call('PEXPIRE', key, ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[7])
`

interface EventCommands {
  mcpEventAppend: (key: string, ...args: Array<string | number>) => Promise<unknown>
}

/** Events in Redis: a client resumes on any replica. */
export class RedisEventStore implements EventStore {
  readonly #link: RedisLink
  readonly #client: Redis & EventCommands
  readonly #opts: Required<RedisEventStoreOptions>
  readonly #channel: string
  readonly #listeners = new Map<string, Set<() => void>>()
  readonly #onMessage = (channel: string, message: string): void => {
    if (channel !== this.#channel) return
    const listeners = this.#listeners.get(message)
    if (listeners !== undefined) for (const listener of listeners) listener()
  }

  constructor (link: RedisLink, opts: RedisEventStoreOptions) {
    this.#link = link
    this.#opts = { maxEventsPerStream: 100, maxStreamsPerSession: 32, ...opts }
    link.client.defineCommand('mcpEventAppend', { numberOfKeys: 1, lua: APPEND })
    this.#client = link.client as Redis & EventCommands
    this.#channel = `${link.prefix}events`
    link.subscriber.on('message', this.#onMessage)
    // Subscribed for the replica's life (ioredis resubscribes after a reconnect).
    link.subscriber.subscribe(this.#channel).catch(() => {})
  }

  #key (sessionId: string, streamId: string): string {
    return `${this.#link.prefix}events:${sessionId}:${streamId}`
  }

  append (sessionId: string, streamId: string, event: StoredEvent): void {
    this.#client.mcpEventAppend(this.#key(sessionId, streamId), this.#opts.maxEventsPerStream, event.seq, event.data,
      event.final ? '1' : '0', this.#opts.ttlMs, this.#channel, `${sessionId} ${streamId}`)
      .catch(this.#opts.onError)
  }

  async replay (sessionId: string, streamId: string, afterSeq: number): Promise<StoredEvent[]> {
    const entries = await this.#client.xrange(this.#key(sessionId, streamId), `(0-${afterSeq}`, '+')
    return entries.map(([id, fields]) => ({
      seq: Number(id.slice(2)),
      data: fields[1] as string,
      final: fields[3] === '1'
    }))
  }

  follow (sessionId: string, streamId: string, listener: () => void): () => void {
    const name = `${sessionId} ${streamId}`
    let listeners = this.#listeners.get(name)
    if (listeners === undefined) {
      listeners = new Set()
      this.#listeners.set(name, listeners)
    }
    listeners.add(listener)
    this.#client.set(`${this.#link.prefix}resumed:${sessionId}:${streamId}`, '1', 'PX', this.#opts.ttlMs)
      .catch(this.#opts.onError)
    return () => {
      listeners.delete(listener)
      if (listeners.size === 0) this.#listeners.delete(name)
    }
  }

  async resumed (sessionId: string, streamId: string): Promise<boolean> {
    return await this.#client.exists(`${this.#link.prefix}resumed:${sessionId}:${streamId}`) === 1
  }

  endSession (): void {
    // The session's streams expire by their TTL: their names are not listed anywhere worth a scan.
  }

  close (): void {
    this.#link.subscriber.removeListener('message', this.#onMessage)
    this.#listeners.clear()
  }
}
