import fp from 'fastify-plugin'
import { Redis, type RedisOptions } from 'ioredis'
import type { FastifyInstance } from 'fastify'
import { redisChannel } from '../lib/observability/channels.js'

export interface RedisPluginOptions {
  /** `redis://[user:password@]host:port[/db]` or `rediss://…` (TLS). */
  url: string
  /** Prepended to every key and channel, so that several deployments can share one Redis. */
  keyPrefix?: string
  connectTimeoutMs?: number
  /** A command not answered in this time fails (the caller then degrades; it never hangs). */
  commandTimeoutMs?: number
}

const defaults = {
  keyPrefix: 'fnmcp:',
  connectTimeoutMs: 5000,
  commandTimeoutMs: 2000
}

/**
 * The one Redis connection of this process, shared by every store. It knows
 * whether Redis answers right now (`available`), so that stores and `/ready`
 * can tell a Redis outage apart from a missing session or key.
 */
export class SharedRedis {
  readonly client: Redis
  readonly prefix: string
  #subscriber: Redis | undefined
  #available = false
  #lastError: string | undefined
  #outageLogged = false

  constructor (readonly options: Required<RedisPluginOptions>, private readonly log: FastifyInstance['log']) {
    this.prefix = options.keyPrefix
    this.client = new Redis(options.url, this.#clientOptions('main'))
    this.client.on('ready', () => {
      if (!this.#available) log.info('Redis connection ready')
      this.#available = true
      this.#lastError = undefined
      this.#outageLogged = false
    })
    this.client.on('error', (err: Error) => this.#failed(err))
    this.client.on('close', () => {
      if (this.#available) log.warn('Redis connection lost; reconnecting')
      this.#available = false
    })
  }

  #clientOptions (name: string): RedisOptions {
    return {
      connectionName: `finance-news-mcp:${name}`,
      connectTimeout: this.options.connectTimeoutMs,
      commandTimeout: this.options.commandTimeoutMs,
      // Fail fast while disconnected: a request waits for no reconnect, it degrades at once.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // Reconnect for ever, backing off to 2 s: when Redis returns, service resumes without a restart.
      retryStrategy: (attempt: number) => Math.min(attempt * 100, 2000)
    }
  }

  #failed (err: Error): void {
    // One warning per outage, not one per reconnect attempt (nor one per
    // flavour of failure: a refused connect and a timed-out one alternate
    // on a loaded host); /ready shows the latest. The message names host
    // and port at most: ioredis never puts the password in it.
    const message = err.message
    if (redisChannel.hasSubscribers) redisChannel.publish({ outcome: 'error' })
    const line = { err: { message, code: (err as NodeJS.ErrnoException).code } }
    if (!this.#outageLogged) this.log.warn(line, 'Redis error')
    this.#outageLogged = true
    this.#lastError = message
  }

  /** Connected and ready for commands. */
  get available (): boolean {
    return this.#available
  }

  /** Why Redis is not available, when it is not (no secrets: host and port at most). */
  get lastError (): string | undefined {
    return this.#lastError
  }

  /** A key (or channel) in this deployment's namespace. */
  key (...parts: string[]): string {
    return this.prefix + parts.join(':')
  }

  /** A second connection for SUBSCRIBE (a subscribed connection runs no other command), made on first use. */
  get subscriber (): Redis {
    if (this.#subscriber === undefined) {
      this.#subscriber = new Redis(this.options.url, { ...this.#clientOptions('subscriber'), enableOfflineQueue: true })
      // Same server, same failures: the main connection's log lines tell them; here only at debug level.
      this.#subscriber.on('error', (err: Error) => { this.log.debug({ err: { message: err.message } }, 'Redis subscriber error') })
    }
    return this.#subscriber
  }

  async close (): Promise<void> {
    for (const client of [this.#subscriber, this.client]) {
      if (client === undefined) continue
      // quit() waits for replies to commands in flight; a dead connection has none to wait for.
      if (client.status === 'ready') await client.quit().catch(() => client.disconnect())
      else client.disconnect()
    }
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Present only when the app runs with shared state (REDIS_URL). */
    redis: SharedRedis
  }
}

/**
 * Owns the Redis connection. Boot does not wait for Redis: a replica whose
 * Redis is down still starts and says so at /ready, and every store degrades
 * until the connection comes back.
 *
 * Why ioredis directly and not @fastify/redis: @fastify/redis fails the boot
 * when Redis does not answer, where this server must start and report not
 * ready; and it has no notion of a shared key prefix for Lua scripts and
 * pub/sub channels. ioredis (the client @fastify/redis wraps) gives TLS
 * (rediss://), ACL users, reconnects and Lua scripting.
 */
async function redisPlugin (fastify: FastifyInstance, options: RedisPluginOptions): Promise<void> {
  if (typeof options.url !== 'string' || !/^rediss?:\/\//.test(options.url)) {
    throw new Error('redis: "url" must be a redis:// or rediss:// URL')
  }
  const opts = { ...defaults, ...options }
  const shared = new SharedRedis(opts, fastify.log)
  fastify.decorate('redis', shared)
  fastify.addHook('onClose', async () => { await shared.close() })
}

export default fp(redisPlugin, { name: 'redis', fastify: '5.x' })
