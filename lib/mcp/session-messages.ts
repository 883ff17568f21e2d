import { randomBytes } from 'node:crypto'
import type { RedisLink } from './redis-session-store.js'

/**
 * Writes a message on a session's standalone GET stream if this replica holds
 * it. `minLevel` (an MCP log level index) is checked against the session's
 * level where the stream is, since only that replica surely knows it.
 */
export type DeliverLocally = (sessionId: string, data: string, logLevel: number | undefined) => boolean

/**
 * Messages from server to client outside any request (MCP transports
 * "Listening for Messages from the Server"): they go on the session's GET
 * stream, wherever that stream is open.
 */
export interface SessionMessenger {
  /** To one session; dropped when no replica holds a GET stream for it. */
  notify: (sessionId: string, data: string, logLevel?: number) => void
  /** To every session that holds a GET stream, on every replica. */
  broadcast: (data: string) => void
  close: () => void
}

/** One replica: the stream is here or nowhere. */
export class MemorySessionMessenger implements SessionMessenger {
  constructor (private readonly deliver: DeliverLocally, private readonly deliverAll: (data: string) => void) {}

  notify (sessionId: string, data: string, logLevel?: number): void {
    this.deliver(sessionId, data, logLevel)
  }

  broadcast (data: string): void {
    this.deliverAll(data)
  }

  close (): void {}
}

/**
 * Several replicas: a message for a stream this replica does not hold is
 * published on `<prefix>sessions:notify` (the pattern of the session store's
 * cancel channel); the replica that holds it writes it.
 */
export class RedisSessionMessenger implements SessionMessenger {
  readonly #link: RedisLink
  readonly #channel: string
  /** Tells this replica's own broadcasts apart when they come back. */
  readonly #origin = randomBytes(6).toString('base64url')
  readonly #onMessage = (channel: string, message: string): void => {
    if (channel !== this.#channel) return
    const { o: origin, s: sessionId, l: logLevel, d: data } = JSON.parse(message) as { o: string, s?: string, l?: number, d: string }
    if (sessionId === undefined) {
      if (origin !== this.#origin) this.deliverAll(data)
    } else {
      this.deliver(sessionId, data, logLevel)
    }
  }

  constructor (link: RedisLink, private readonly deliver: DeliverLocally, private readonly deliverAll: (data: string) => void, private readonly onError: (err: Error) => void) {
    this.#link = link
    this.#channel = `${link.prefix}sessions:notify`
    link.subscriber.on('message', this.#onMessage)
    link.subscriber.subscribe(this.#channel).catch(onError)
  }

  notify (sessionId: string, data: string, logLevel?: number): void {
    if (this.deliver(sessionId, data, logLevel)) return
    this.#link.client.publish(this.#channel, JSON.stringify({ o: this.#origin, s: sessionId, l: logLevel, d: data })).catch(this.onError)
  }

  broadcast (data: string): void {
    this.deliverAll(data)
    this.#link.client.publish(this.#channel, JSON.stringify({ o: this.#origin, d: data })).catch(this.onError)
  }

  close (): void {
    this.#link.subscriber.removeListener('message', this.#onMessage)
  }
}
