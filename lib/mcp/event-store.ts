import { randomBytes } from 'node:crypto'

/**
 * MCP transports "Resumability and Redelivery": every SSE event carries an id
 * `<stream>-<seq>`, where the stream part is random and unique within the
 * session and the sequence counts that stream's events from 1 (0 is the
 * priming event). A client that lost a stream sends GET with Last-Event-ID
 * and receives what followed on that stream only.
 */
export interface StoredEvent {
  seq: number
  /** The JSON-RPC message, serialized. */
  data: string
  /** The stream's last event (a POST stream ends with its response). */
  final: boolean
}

export interface EventStore {
  /** Stores one event of a stream; never throws (a lost event only makes a later resume shorter). */
  append: (sessionId: string, streamId: string, event: StoredEvent) => void
  /** The stream's stored events after `afterSeq`, oldest first. Rejects when the store cannot answer. */
  replay: (sessionId: string, streamId: string, afterSeq: number) => Promise<StoredEvent[]>
  /**
   * Calls `listener` after each event appended to the stream from now on,
   * on whichever replica it was produced; and records that the stream was
   * resumed. Returns the function that stops listening.
   */
  follow: (sessionId: string, streamId: string, listener: () => void) => () => void
  /** Whether a client resumed the stream (anywhere) since it was produced. */
  resumed: (sessionId: string, streamId: string) => boolean | Promise<boolean>
  /** Forgets a session's events (it ended). */
  endSession: (sessionId: string) => void
  close: () => void
}

export function newStreamId (): string {
  return randomBytes(9).toString('base64url')
}

export function eventId (streamId: string, seq: number): string {
  return `${streamId}-${seq}`
}

const EVENT_ID = /^([A-Za-z0-9_-]{1,32})-(\d{1,9})$/

/** The stream and sequence an event id names, or undefined for one this server never made. */
export function parseEventId (id: string): { streamId: string, seq: number } | undefined {
  const match = EVENT_ID.exec(id)
  return match === null ? undefined : { streamId: match[1] as string, seq: Number(match[2]) }
}

export interface EventStoreOptions {
  /** Events kept per stream (the oldest go first). */
  maxEventsPerStream?: number
  /** Streams kept per session (the oldest go first). */
  maxStreamsPerSession?: number
}

interface MemoryStream { events: StoredEvent[], listeners: Set<() => void>, resumed: boolean }

/** Events in this process's memory, bounded per stream and per session, dropped with the session. */
export class MemoryEventStore implements EventStore {
  readonly #sessions = new Map<string, Map<string, MemoryStream>>()
  readonly #maxEvents: number
  readonly #maxStreams: number

  constructor (opts: EventStoreOptions = {}) {
    this.#maxEvents = opts.maxEventsPerStream ?? 100
    this.#maxStreams = opts.maxStreamsPerSession ?? 32
  }

  #stream (sessionId: string, streamId: string): MemoryStream {
    let streams = this.#sessions.get(sessionId)
    if (streams === undefined) {
      streams = new Map()
      this.#sessions.set(sessionId, streams)
    }
    let stream = streams.get(streamId)
    if (stream === undefined) {
      if (streams.size >= this.#maxStreams) streams.delete(streams.keys().next().value as string)
      stream = { events: [], listeners: new Set(), resumed: false }
      streams.set(streamId, stream)
    }
    return stream
  }

  append (sessionId: string, streamId: string, event: StoredEvent): void {
    const stream = this.#stream(sessionId, streamId)
    if (stream.events.length >= this.#maxEvents) stream.events.shift()
    stream.events.push(event)
    for (const listener of stream.listeners) listener()
  }

  async replay (sessionId: string, streamId: string, afterSeq: number): Promise<StoredEvent[]> {
    const events = this.#sessions.get(sessionId)?.get(streamId)?.events ?? []
    return events.filter(e => e.seq > afterSeq)
  }

  follow (sessionId: string, streamId: string, listener: () => void): () => void {
    const stream = this.#stream(sessionId, streamId)
    stream.resumed = true
    stream.listeners.add(listener)
    return () => { stream.listeners.delete(listener) }
  }

  resumed (sessionId: string, streamId: string): boolean {
    return this.#sessions.get(sessionId)?.get(streamId)?.resumed === true
  }

  endSession (sessionId: string): void {
    this.#sessions.delete(sessionId)
  }

  close (): void {
    this.#sessions.clear()
  }
}
