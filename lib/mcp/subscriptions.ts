import type { Redis } from 'ioredis'
import type { RedisLink } from './redis-session-store.js'
import type { SessionEndReason } from './session-store.js'

/** Resources one session may watch at once: resources/subscribe beyond it is refused. */
export const MAX_SUBSCRIPTIONS_PER_SESSION = 100

export class SubscriptionLimitError extends Error {
  constructor () {
    super(`a session may subscribe to at most ${MAX_SUBSCRIPTIONS_PER_SESSION} resources; unsubscribe from some first`)
    this.name = 'SubscriptionLimitError'
  }
}

/**
 * Which sessions watch which resource URIs (MCP resources "Subscriptions").
 * In memory for one replica; in Redis for several, so that an update raised
 * on any replica finds every subscribed session. A subscription ends with
 * its session.
 */
export interface SubscriptionStore {
  /** Rejects (or throws) SubscriptionLimitError past MAX_SUBSCRIPTIONS_PER_SESSION. */
  subscribe: (sessionId: string, uri: string) => void | Promise<void>
  unsubscribe: (sessionId: string, uri: string) => void | Promise<void>
  /** The sessions subscribed to `uri`. */
  subscribers: (uri: string) => readonly string[] | Promise<readonly string[]>
  /** The session ended (on this replica's view): forget what it watched. */
  sessionEnded: (sessionId: string, reason: SessionEndReason) => void
}

export class MemorySubscriptionStore implements SubscriptionStore {
  readonly #byUri = new Map<string, Set<string>>()
  readonly #bySession = new Map<string, Set<string>>()

  subscribe (sessionId: string, uri: string): void {
    let mine = this.#bySession.get(sessionId)
    if (mine?.has(uri) === true) return
    if (mine !== undefined && mine.size >= MAX_SUBSCRIPTIONS_PER_SESSION) throw new SubscriptionLimitError()
    if (mine === undefined) this.#bySession.set(sessionId, mine = new Set())
    mine.add(uri)
    let watchers = this.#byUri.get(uri)
    if (watchers === undefined) this.#byUri.set(uri, watchers = new Set())
    watchers.add(sessionId)
  }

  unsubscribe (sessionId: string, uri: string): void {
    const mine = this.#bySession.get(sessionId)
    if (mine?.delete(uri) !== true) return
    if (mine.size === 0) this.#bySession.delete(sessionId)
    this.#forget(uri, sessionId)
  }

  subscribers (uri: string): readonly string[] {
    const watchers = this.#byUri.get(uri)
    return watchers === undefined ? [] : [...watchers]
  }

  sessionEnded (sessionId: string): void {
    const mine = this.#bySession.get(sessionId)
    if (mine === undefined) return
    this.#bySession.delete(sessionId)
    for (const uri of mine) this.#forget(uri, sessionId)
  }

  /** Resource URIs watched by at least one session (for tests and metrics). */
  get size (): number {
    return this.#byUri.size
  }

  #forget (uri: string, sessionId: string): void {
    const watchers = this.#byUri.get(uri) as Set<string>
    watchers.delete(sessionId)
    if (watchers.size === 0) this.#byUri.delete(uri)
  }
}

// Keys: <p>subscribers:<uri> (set of session ids), <p>subscriptions:<id> (set
// of the session's URIs). Sessions live at <p>session:<id> (RedisSessionStore):
// a session that expired without a message (Redis TTL) is pruned from a URI's
// set the next time that URI is updated. Keys are derived inside the scripts:
// standalone Redis or Valkey, as the session store.
const SUBSCRIBE = `local p, id, uri, max, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local mine = p .. 'subscriptions:' .. id
if redis.call('SISMEMBER', mine, uri) == 0 and redis.call('SCARD', mine) >= max then return 0 end
redis.call('SADD', mine, uri)
redis.call('PEXPIRE', mine, ttl)
redis.call('SADD', p .. 'subscribers:' .. uri, id)
return 1
`
const UNSUBSCRIBE = `local p, id, uri = ARGV[1], ARGV[2], ARGV[3]
redis.call('SREM', p .. 'subscriptions:' .. id, uri)
redis.call('SREM', p .. 'subscribers:' .. uri, id)
return 1
`
const SUBSCRIBERS = `local p, uri = ARGV[1], ARGV[2]
local key = p .. 'subscribers:' .. uri
local live = {}
for _, id in ipairs(redis.call('SMEMBERS', key)) do
  if redis.call('EXISTS', p .. 'session:' .. id) == 1 then
    live[#live + 1] = id
  else
    redis.call('SREM', key, id)
    redis.call('DEL', p .. 'subscriptions:' .. id)
  end
end
return live
`
const SESSION_ENDED = `local p, id = ARGV[1], ARGV[2]
local mine = p .. 'subscriptions:' .. id
for _, uri in ipairs(redis.call('SMEMBERS', mine)) do redis.call('SREM', p .. 'subscribers:' .. uri, id) end
redis.call('DEL', mine)
return 1
`

interface SubscriptionCommands {
  mcpSubscribe: (...args: Array<string | number>) => Promise<0 | 1>
  mcpUnsubscribe: (...args: string[]) => Promise<1>
  mcpSubscribers: (...args: string[]) => Promise<string[]>
  mcpSubscriptionsEnd: (...args: string[]) => Promise<1>
}

export interface RedisSubscriptionStoreOptions {
  /** How long a session's own list of URIs outlives its last subscribe (a safety net: its end removes it). */
  ttlMs: number
  /** A session's subscriptions could not be removed at its end (Redis down): they are pruned at the next update. */
  onError?: (err: Error) => void
}

export class RedisSubscriptionStore implements SubscriptionStore {
  readonly #commands: SubscriptionCommands
  readonly #prefix: string
  readonly #opts: RedisSubscriptionStoreOptions

  constructor (link: RedisLink, opts: RedisSubscriptionStoreOptions) {
    const client: Redis = link.client
    client.defineCommand('mcpSubscribe', { numberOfKeys: 0, lua: SUBSCRIBE })
    client.defineCommand('mcpUnsubscribe', { numberOfKeys: 0, lua: UNSUBSCRIBE })
    client.defineCommand('mcpSubscribers', { numberOfKeys: 0, lua: SUBSCRIBERS })
    client.defineCommand('mcpSubscriptionsEnd', { numberOfKeys: 0, lua: SESSION_ENDED })
    this.#commands = client as unknown as SubscriptionCommands
    this.#prefix = link.prefix
    this.#opts = opts
  }

  async subscribe (sessionId: string, uri: string): Promise<void> {
    const added = await this.#commands.mcpSubscribe(this.#prefix, sessionId, uri, MAX_SUBSCRIPTIONS_PER_SESSION, this.#opts.ttlMs)
    if (added === 0) throw new SubscriptionLimitError()
  }

  async unsubscribe (sessionId: string, uri: string): Promise<void> {
    await this.#commands.mcpUnsubscribe(this.#prefix, sessionId, uri)
  }

  async subscribers (uri: string): Promise<readonly string[]> {
    return await this.#commands.mcpSubscribers(this.#prefix, uri)
  }

  sessionEnded (sessionId: string, reason: SessionEndReason): void {
    // A replica shutting down ends only its copy: the session lives on in Redis, with its subscriptions.
    if (reason === 'shutdown') return
    this.#commands.mcpSubscriptionsEnd(this.#prefix, sessionId).catch((err: Error) => this.#opts.onError?.(err))
  }
}
