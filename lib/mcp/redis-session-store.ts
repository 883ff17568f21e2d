import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import {
  SessionLimitError, SessionStoreUnavailableError, cancelLocal,
  type McpSession, type SessionEndReason, type SessionStore, type SessionStoreOptions
} from './session-store.js'

/** What the Redis stores need of the app's Redis plugin (its `SharedRedis` fits). */
export interface RedisLink {
  readonly client: Redis
  /** A second connection, for SUBSCRIBE. */
  readonly subscriber: Redis
  /** Prepended to every key and channel. */
  readonly prefix: string
}

export interface RedisSessionStoreOptions extends SessionStoreOptions {
  /**
   * A session in use has its Redis entry refreshed (TTL, last use) at most
   * this often, in the background: the hot path waits for no round trip.
   * It is also the precision of "least recently used" across replicas.
   */
  refreshEveryMs?: number
  /** Retry-After for a request refused while Redis cannot answer. */
  retryAfterSec?: number
}

// The scripts read the server's clock (TIME) so that every replica agrees on
// "last used" whatever its own clock says, and run atomically: two replicas
// creating sessions for one owner at its cap cannot both slip under it.
// Keys: <p>session:<id> (hash), <p>sessions (zset of every id by last use),
// <p>owner:<sha1(owner)> (zset of the owner's ids by last use); each carries
// the idle TTL, so that everything left behind by idle clients expires.
// (Keys are derived inside the scripts: standalone Redis or Valkey, not Cluster.)
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local p = ARGV[1]
local all = p .. 'sessions'
`
const CREATE = NOW + `local id, owner, ttl = ARGV[2], ARGV[3], tonumber(ARGV[6])
local mine = p .. 'owner:' .. redis.sha1hex(owner)
redis.call('ZREMRANGEBYSCORE', all, '-inf', now - ttl)
redis.call('ZREMRANGEBYSCORE', mine, '-inf', now - ttl)
local evicted = ''
if redis.call('ZCARD', mine) >= tonumber(ARGV[7]) then
  evicted = redis.call('ZRANGE', mine, 0, 0)[1]
  redis.call('DEL', p .. 'session:' .. evicted)
  redis.call('ZREM', mine, evicted)
  redis.call('ZREM', all, evicted)
  redis.call('PUBLISH', p .. 'sessions:ended', 'evicted ' .. evicted)
end
if redis.call('ZCARD', all) >= tonumber(ARGV[8]) then return {0, evicted} end
local key = p .. 'session:' .. id
redis.call('HSET', key, 'owner', owner, 'pv', ARGV[4], 'ci', ARGV[5], 'cc', ARGV[9], 'created', now, 'used', now)
redis.call('PEXPIRE', key, ttl)
redis.call('ZADD', all, now, id)
redis.call('PEXPIRE', all, ttl)
redis.call('ZADD', mine, now, id)
redis.call('PEXPIRE', mine, ttl)
return {1, evicted, now}
`
// 0: another owner's session (left untouched); nil: no such session.
const USE = NOW + `local id, owner, ttl = ARGV[2], ARGV[3], tonumber(ARGV[4])
local key = p .. 'session:' .. id
local s = redis.call('HMGET', key, 'owner', 'pv', 'ci', 'created', 'cc', 'll')
if not s[1] then return nil end
if s[1] ~= owner then return 0 end
local mine = p .. 'owner:' .. redis.sha1hex(owner)
redis.call('HSET', key, 'used', now)
redis.call('PEXPIRE', key, ttl)
redis.call('ZADD', all, 'XX', now, id)
redis.call('PEXPIRE', all, ttl)
redis.call('ZADD', mine, 'XX', now, id)
redis.call('PEXPIRE', mine, ttl)
return {s[2], s[3], s[4], s[5] or '0', s[6] or ''}
`
// The level is kept with the session and published, so that every replica's copy follows at once.
const SET_LEVEL = `if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'll', ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3] .. ' ' .. ARGV[1])
return 1
`
const END = NOW + `local id = ARGV[2]
local key = p .. 'session:' .. id
local owner = redis.call('HGET', key, 'owner')
if not owner then return 0 end
redis.call('DEL', key)
redis.call('ZREM', all, id)
redis.call('ZREM', p .. 'owner:' .. redis.sha1hex(owner), id)
redis.call('PUBLISH', p .. 'sessions:ended', ARGV[3] .. ' ' .. id)
return 1
`

interface SessionCommands {
  mcpSessionCreate: (...args: Array<string | number>) => Promise<[0 | 1, string, number?]>
  mcpSessionUse: (...args: Array<string | number>) => Promise<[string, string, string, string, string] | 0 | null>
  mcpSessionEnd: (...args: string[]) => Promise<0 | 1>
  mcpSessionSetLevel: (key: string, level: number, channel: string, id: string) => Promise<0 | 1>
}

interface Cached {
  session: McpSession
  /** When the last refresh that Redis acknowledged was sent: the key lives at least until this + TTL. */
  refreshedAt: number
  /** The subscription it was read under: a copy read before a lost subscription may have missed a deletion. */
  generation: number
  refreshing: boolean
}

/**
 * Sessions in Redis, so that any replica answers any session.
 *
 * A replica keeps the sessions it served in memory and answers from there
 * without a round trip, as long as it can be sure the copy is current:
 * - deletion and eviction, wherever they happen, are published on
 *   `<prefix>sessions:ended` by the same script that removes the key, and
 *   every replica drops its copy when the message arrives;
 * - expiry needs no message: a copy is trusted only until the TTL set by this
 *   replica's last acknowledged refresh could have run out (other replicas
 *   can only push it later); past that the replica asks Redis;
 * - while the subscription is down (Redis lost, reconnecting) no copy is
 *   trusted, and every request asks Redis; a copy read before the loss is
 *   not trusted again until Redis has been asked (it may have missed a
 *   deletion meanwhile).
 * The stale-read window is thus the pub/sub delivery delay of a deletion made
 * on another replica (well under a millisecond on one network), for a request
 * that races the DELETE; never longer.
 */
export class RedisSessionStore implements SessionStore {
  readonly shared = true
  readonly #link: RedisLink
  readonly #commands: SessionCommands
  readonly #opts: Required<Omit<RedisSessionStoreOptions, 'onEnd'>> & Pick<RedisSessionStoreOptions, 'onEnd'>
  readonly #cache = new Map<string, Cached>()
  readonly #endedChannel: string
  readonly #cancelChannel: string
  readonly #levelChannel: string
  /** How long before the known expiry a copy stops being trusted (clock drift, command latency). */
  readonly #margin: number
  #listening = false
  #generation = 0
  #closed = false
  readonly #sweeper: NodeJS.Timeout
  readonly #onMessage = (channel: string, message: string): void => this.#message(channel, message)
  readonly #onClose = (): void => {
    this.#listening = false
    this.#generation++
  }

  readonly #onReady = (): void => { this.#subscribe() }

  constructor (link: RedisLink, opts: RedisSessionStoreOptions) {
    this.#link = link
    this.#opts = {
      refreshEveryMs: Math.min(1000, Math.floor(opts.idleTtlMs / 4)),
      retryAfterSec: 5,
      ...opts
    }
    this.#margin = Math.min(1000, Math.floor(opts.idleTtlMs / 10))
    // Defining again (another store on the same connection) only replaces the same script.
    const client = link.client
    client.defineCommand('mcpSessionCreate', { numberOfKeys: 0, lua: CREATE })
    client.defineCommand('mcpSessionUse', { numberOfKeys: 0, lua: USE })
    client.defineCommand('mcpSessionEnd', { numberOfKeys: 0, lua: END })
    client.defineCommand('mcpSessionSetLevel', { numberOfKeys: 1, lua: SET_LEVEL })
    this.#commands = client as unknown as SessionCommands
    this.#endedChannel = `${link.prefix}sessions:ended`
    this.#cancelChannel = `${link.prefix}sessions:cancel`
    this.#levelChannel = `${link.prefix}sessions:level`
    const subscriber = link.subscriber
    subscriber.on('message', this.#onMessage)
    subscriber.on('close', this.#onClose)
    subscriber.on('ready', this.#onReady)
    this.#subscribe()
    const every = Math.max(1000, Math.min(60_000, Math.floor(opts.idleTtlMs / 4)))
    this.#sweeper = setInterval(() => this.sweep(), every)
    this.#sweeper.unref()
  }

  /** Copies become trustworthy once the subscription is acknowledged (after any reconnect too). */
  #subscribe (): void {
    this.#link.subscriber.subscribe(this.#endedChannel, this.#cancelChannel, this.#levelChannel).then(
      () => { this.#listening = !this.#closed },
      /* c8 ignore next -- lost with the connection (timing): the next 'ready' subscribes again, and until then no copy is trusted */
      () => {}
    )
  }

  get size (): number {
    return this.#cache.size
  }

  /** Whether this replica learns of deletions right now (so its copies can be trusted). */
  get listening (): boolean {
    return this.#listening
  }

  #unavailable (err: unknown): SessionStoreUnavailableError {
    return new SessionStoreUnavailableError(this.#opts.retryAfterSec, { cause: err })
  }

  async create (subject: string, protocolVersion: string, clientInfo: McpSession['clientInfo'], clientCapabilities = 0): Promise<McpSession> {
    const id = randomBytes(24).toString('base64url')
    const sentAt = Date.now()
    let reply: Awaited<ReturnType<SessionCommands['mcpSessionCreate']>>
    try {
      reply = await this.#commands.mcpSessionCreate(this.#link.prefix, id, subject, protocolVersion,
        JSON.stringify(clientInfo ?? null), this.#opts.idleTtlMs, this.#opts.maxSessionsPerSubject, this.#opts.maxSessions, clientCapabilities)
    } catch (err) {
      throw this.#unavailable(err)
    }
    // The eviction is published too; ending it here as well means this replica
    // never serves it again, even before the message comes back.
    if (reply[1] !== '') this.#endLocal(reply[1], 'evicted')
    if (reply[0] === 0) throw new SessionLimitError()
    const session: McpSession = {
      id, subject, protocolVersion, clientInfo, clientCapabilities, logLevel: undefined, createdAt: reply[2] as number, lastSeen: sentAt, stream: undefined, inflight: undefined
    }
    this.#cache.set(id, { session, refreshedAt: sentAt, generation: this.#generation, refreshing: false })
    return session
  }

  use (id: string, subject: string): McpSession | undefined | Promise<McpSession | undefined> {
    const now = Date.now()
    const cached = this.#cache.get(id)
    if (cached !== undefined && this.#listening && cached.generation === this.#generation && now < cached.refreshedAt + this.#opts.idleTtlMs - this.#margin) {
      if (cached.session.subject !== subject) return undefined
      cached.session.lastSeen = now
      if (now - cached.refreshedAt >= this.#opts.refreshEveryMs) this.#refresh(cached, now)
      return cached.session
    }
    return this.#load(id, subject, now)
  }

  /** Pushes the TTL and last use in the background; a session found gone ends here too. */
  #refresh (cached: Cached, now: number): void {
    // One refresh in flight per session (whether a use lands meanwhile is timing).
    /* c8 ignore next */
    if (cached.refreshing) return
    cached.refreshing = true
    const session = cached.session
    this.#commands.mcpSessionUse(this.#link.prefix, session.id, session.subject, this.#opts.idleTtlMs).then(reply => {
      cached.refreshing = false
      // Gone behind this replica's back (an operator's FLUSHDB, a message lost with a connection).
      if (reply === null) {
        this.#endLocal(session.id, 'expired')
        return
      }
      // The copy's generation stays: one read under a lost subscription is not trusted again by a refresh.
      cached.refreshedAt = now
    }, () => {
      // Redis failed: the copy ages out of trust, and the next request asks Redis (503 if it is still down).
      cached.refreshing = false
    })
  }

  async #load (id: string, subject: string, now: number): Promise<McpSession | undefined> {
    const generation = this.#generation
    let reply: Awaited<ReturnType<SessionCommands['mcpSessionUse']>>
    try {
      reply = await this.#commands.mcpSessionUse(this.#link.prefix, id, subject, this.#opts.idleTtlMs)
    } catch (err) {
      throw this.#unavailable(err)
    }
    if (reply === 0) return undefined
    if (reply === null) {
      this.#endLocal(id, 'expired')
      return undefined
    }
    const cached = this.#cache.get(id)
    if (cached !== undefined) {
      cached.refreshedAt = now
      cached.generation = generation
      cached.session.lastSeen = now
      // A level set elsewhere while this copy was not trusted.
      cached.session.logLevel = reply[4] === '' ? undefined : Number(reply[4])
      return cached.session
    }
    const session: McpSession = {
      id,
      subject,
      protocolVersion: reply[0],
      clientInfo: JSON.parse(reply[1]) ?? undefined,
      clientCapabilities: Number(reply[3]),
      logLevel: reply[4] === '' ? undefined : Number(reply[4]),
      createdAt: Number(reply[2]),
      lastSeen: now,
      stream: undefined,
      inflight: undefined
    }
    this.#cache.set(id, { session, refreshedAt: now, generation, refreshing: false })
    return session
  }

  async end (id: string, reason: SessionEndReason): Promise<boolean> {
    let ended: 0 | 1
    try {
      ended = await this.#commands.mcpSessionEnd(this.#link.prefix, id, reason)
    } catch (err) {
      throw this.#unavailable(err)
    }
    this.#endLocal(id, reason)
    return ended === 1
  }

  get (id: string): McpSession | undefined {
    return this.#cache.get(id)?.session
  }

  * values (): IterableIterator<McpSession> {
    for (const cached of this.#cache.values()) yield cached.session
  }

  cancel (id: string, requestId: string | number): void {
    cancelLocal(this.get(id), requestId)
    // The call may run on another replica: tell them all (the owner was checked before this).
    this.#link.client.publish(this.#cancelChannel, JSON.stringify([id, requestId])).catch(() => {})
  }

  async setLogLevel (id: string, level: number): Promise<void> {
    const session = this.get(id)
    if (session !== undefined) session.logLevel = level
    try {
      await this.#commands.mcpSessionSetLevel(`${this.#link.prefix}session:${id}`, level, this.#levelChannel, id)
    } catch (err) {
      throw this.#unavailable(err)
    }
  }

  #message (channel: string, message: string): void {
    if (channel === this.#endedChannel) {
      const space = message.indexOf(' ')
      this.#endLocal(message.slice(space + 1), message.slice(0, space) as SessionEndReason)
    } else if (channel === this.#cancelChannel) {
      const [id, requestId] = JSON.parse(message) as [string, string | number]
      cancelLocal(this.get(id), requestId)
    } else if (channel === this.#levelChannel) {
      const space = message.indexOf(' ')
      const session = this.get(message.slice(0, space))
      if (session !== undefined) session.logLevel = Number(message.slice(space + 1))
    }
  }

  /** Forgets this replica's copy, ending what it holds here (stream, calls in flight). */
  #endLocal (id: string, reason: SessionEndReason): void {
    const cached = this.#cache.get(id)
    if (cached === undefined) return
    this.#cache.delete(id)
    const session = cached.session
    if (session.inflight !== undefined) for (const call of session.inflight.values()) call.abort()
    this.#opts.onEnd?.(session, reason)
  }

  /**
   * Forgets copies that idled past their trust (Redis expires the sessions
   * themselves), and keeps sessions holding an open stream here alive in Redis:
   * a session with an open stream is not idle.
   */
  sweep (now = Date.now()): void {
    for (const cached of this.#cache.values()) {
      const session = cached.session
      if (session.stream !== undefined || session.inflight !== undefined) {
        this.#refresh(cached, now)
      } else if (now >= cached.refreshedAt + this.#opts.idleTtlMs) {
        // Only this replica's copy: the session may live on, used elsewhere.
        this.#cache.delete(session.id)
      }
    }
  }

  close (): void {
    this.#closed = true
    this.#listening = false
    clearInterval(this.#sweeper)
    const subscriber = this.#link.subscriber
    subscriber.removeListener('message', this.#onMessage)
    subscriber.removeListener('close', this.#onClose)
    subscriber.removeListener('ready', this.#onReady)
    // Sessions outlive a replica: only this replica's copies end.
    for (const id of [...this.#cache.keys()]) this.#endLocal(id, 'shutdown')
  }
}
