import { randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'

export interface McpSession {
  /** 192 bits from the CSPRNG, base64url: visible ASCII as MCP transports "Session Management" requires. */
  readonly id: string
  /**
   * Who opened it, as one opaque key (see `sessionOwner`): only the same
   * principal through the same client may use it. Caps count per owner.
   */
  readonly subject: string
  readonly protocolVersion: string
  readonly clientInfo: { name?: string, version?: string } | undefined
  /** What the client declared at initialize, as bits (see ClientCapabilityBit): one small integer. */
  readonly clientCapabilities: number
  /** The least severe MCP log level the client asked for (logging/setLevel), as an index; undefined until it asks. */
  logLevel: number | undefined
  readonly createdAt: number
  lastSeen: number
  /** The standalone GET stream, when the client opened one. */
  stream: ServerResponse | undefined
  /** Requests in flight, by JSON-RPC id, for notifications/cancelled. Created on first use. */
  inflight: Map<string | number, { abort: () => void }> | undefined
}

export interface SessionStoreOptions {
  idleTtlMs: number
  maxSessions: number
  maxSessionsPerSubject: number
  /** Called for every session that ends, however it ends. */
  onEnd?: (session: McpSession, reason: SessionEndReason) => void
}

export type SessionEndReason = 'deleted' | 'expired' | 'evicted' | 'shutdown'

export class SessionLimitError extends Error {
  constructor () {
    super('the server holds as many sessions as it can; retry later')
    this.name = 'SessionLimitError'
  }
}

/** The shared store cannot answer now (Redis down or slow): neither a yes nor a no about the session. */
export class SessionStoreUnavailableError extends Error {
  constructor (readonly retryAfterSec: number, options?: ErrorOptions) {
    super('session storage is unavailable; retry shortly', options)
    this.name = 'SessionStoreUnavailableError'
  }
}

/**
 * The key a session is bound to: the principal (`user:<sub>` or
 * `client:<client id>`, never mixed) and the client the token was issued to
 * (`client_id`/`azp`). A token for the same user issued to another client
 * neither uses nor evicts this one's sessions. JSON keeps the parts apart
 * whatever characters they hold.
 */
export function sessionOwner (principal: string, clientId: string | undefined): string {
  return JSON.stringify([principal, clientId ?? null])
}

/**
 * Where sessions live. An answer known locally comes back synchronously (no
 * promise on the hot path); one that needs the shared store comes back as a
 * promise, which rejects with SessionStoreUnavailableError when that store
 * cannot answer.
 */
export interface SessionStore {
  /** Shared by several replicas (a deletion elsewhere reaches this one through the store). */
  readonly shared: boolean
  /** Sessions known to this replica. */
  readonly size: number
  /** Opens a session, evicting the owner's least recently used one at its cap; SessionLimitError when full. */
  create: (subject: string, protocolVersion: string, clientInfo: McpSession['clientInfo'], clientCapabilities?: number) => McpSession | Promise<McpSession>
  /** The live session with this id if `subject` owns it, refreshed; undefined when unknown, expired or another owner's (which is not refreshed). */
  use: (id: string, subject: string) => McpSession | undefined | Promise<McpSession | undefined>
  /** Ends a session everywhere. */
  end: (id: string, reason: SessionEndReason) => boolean | Promise<boolean>
  /** A session known to this replica, as it is. */
  get: (id: string) => McpSession | undefined
  /** Sessions known to this replica. */
  values: () => IterableIterator<McpSession>
  /** Tells the replica holding the session's calls to cancel one (notifications/cancelled). */
  cancel: (id: string, requestId: string | number) => void
  /** Keeps the session's MCP log level (logging/setLevel), for every replica. */
  setLogLevel: (id: string, level: number) => void | Promise<void>
  close: () => void | Promise<void>
}

/** Aborts a session's call in flight on this replica, if it runs here. */
export function cancelLocal (session: McpSession | undefined, requestId: string | number): void {
  session?.inflight?.get(requestId)?.abort()
}

/**
 * Sessions in memory, bounded in total and per subject, expired when idle by
 * one sweep (no timer per session: 10,000 idle sessions stay cheap).
 */
export class MemorySessionStore implements SessionStore {
  readonly shared = false
  readonly #sessions = new Map<string, McpSession>()
  /** Per subject, its sessions in least-recently-opened order. */
  readonly #bySubject = new Map<string, Set<string>>()
  readonly #opts: SessionStoreOptions
  #sweeper: NodeJS.Timeout | undefined

  constructor (opts: SessionStoreOptions) {
    this.#opts = opts
    const every = Math.max(1000, Math.min(60_000, Math.floor(opts.idleTtlMs / 4)))
    this.#sweeper = setInterval(() => this.sweep(), every)
    this.#sweeper.unref()
  }

  get size (): number {
    return this.#sessions.size
  }

  /**
   * Opens a session. A subject at its cap loses its own least recently used session (a
   * flood from one subject never evicts another's); a full server refuses.
   */
  create (subject: string, protocolVersion: string, clientInfo: McpSession['clientInfo'], clientCapabilities = 0, now = Date.now()): McpSession {
    let own = this.#bySubject.get(subject)
    if (own !== undefined && own.size >= this.#opts.maxSessionsPerSubject) {
      this.end(this.#leastRecentlyUsed(own), 'evicted')
    }
    if (this.#sessions.size >= this.#opts.maxSessions) {
      this.sweep(now)
      if (this.#sessions.size >= this.#opts.maxSessions) throw new SessionLimitError()
    }
    const session: McpSession = {
      id: randomBytes(24).toString('base64url'),
      subject,
      protocolVersion,
      clientInfo,
      clientCapabilities,
      logLevel: undefined,
      createdAt: now,
      lastSeen: now,
      stream: undefined,
      inflight: undefined
    }
    this.#sessions.set(session.id, session)
    own = this.#bySubject.get(subject)
    if (own === undefined) {
      own = new Set()
      this.#bySubject.set(subject, own)
    }
    own.add(session.id)
    return session
  }

  /** The session with this id as it is, without refreshing or expiring it. */
  get (id: string): McpSession | undefined {
    return this.#sessions.get(id)
  }

  /**
   * The subject's session used longest ago: a client busy in one session must
   * not lose it to the same subject's new ones. A scan of at most the
   * per-subject cap, on session creation only (the hot path stays O(1)).
   */
  #leastRecentlyUsed (ids: Set<string>): string {
    let oldest: McpSession | undefined
    for (const id of ids) {
      const session = this.#sessions.get(id) as McpSession
      if (oldest === undefined || session.lastSeen < oldest.lastSeen) oldest = session
    }
    return (oldest as McpSession).id
  }

  use (id: string, subject: string): McpSession | undefined {
    const session = this.#sessions.get(id)
    // Another owner's request does not keep the session alive.
    if (session === undefined || session.subject !== subject) return undefined
    return this.touch(id)
  }

  cancel (id: string, requestId: string | number): void {
    cancelLocal(this.#sessions.get(id), requestId)
  }

  setLogLevel (id: string, level: number): void {
    const session = this.#sessions.get(id)
    if (session !== undefined) session.logLevel = level
  }

  /** The live session with this id, refreshed; undefined when unknown or expired. */
  touch (id: string, now = Date.now()): McpSession | undefined {
    const session = this.#sessions.get(id)
    if (session === undefined) return undefined
    if (now - session.lastSeen > this.#opts.idleTtlMs && session.stream === undefined) {
      this.end(id, 'expired')
      return undefined
    }
    session.lastSeen = now
    return session
  }

  end (id: string, reason: SessionEndReason): boolean {
    const session = this.#sessions.get(id)
    if (session === undefined) return false
    this.#sessions.delete(id)
    const own = this.#bySubject.get(session.subject)
    own?.delete(id)
    if (own?.size === 0) this.#bySubject.delete(session.subject)
    if (session.inflight !== undefined) for (const call of session.inflight.values()) call.abort()
    this.#opts.onEnd?.(session, reason)
    return true
  }

  /** Ends sessions idle past the TTL. A session holding an open stream is not idle. */
  sweep (now = Date.now()): number {
    let ended = 0
    for (const session of this.#sessions.values()) {
      if (now - session.lastSeen > this.#opts.idleTtlMs && session.stream === undefined) {
        this.end(session.id, 'expired')
        ended++
      }
    }
    return ended
  }

  countFor (subject: string): number {
    return this.#bySubject.get(subject)?.size ?? 0
  }

  values (): IterableIterator<McpSession> {
    return this.#sessions.values()
  }

  close (): void {
    clearInterval(this.#sweeper)
    for (const id of [...this.#sessions.keys()]) this.end(id, 'shutdown')
  }
}
