import type { Redis } from 'ioredis'

/** Why a new upstream question was not allowed. */
export type QuotaRefusal = 'daily' | 'share'

export interface QuotaTake {
  ok: boolean
  /** Set when not ok. */
  refusal?: QuotaRefusal
  /** Upstream calls counted today, for the whole deployment (after this one, when ok). */
  used: number
  /** Upstream calls counted today for the subject (0 without one). */
  subjectUsed: number
}

export interface QuotaLimits {
  /** The UTC day (days since the epoch) and the moment it ends (ms). */
  day: number
  resetsAt: number
  dailyLimit: number
  /** Calls one subject may start per day. */
  subjectLimit: number
}

/**
 * The upstream economy's counters: the daily quota (for the deployment and
 * per subject), the per-minute pace and the "daily limit" block that Alpha
 * Vantage's own answer sets. In memory for one process; in Redis for every
 * replica at once. Every method is atomic on its own (no read-then-write).
 */
export interface QuotaStore {
  /** Counts one upstream call for the day and the subject unless either is spent. */
  take: (subject: string | undefined, limits: QuotaLimits) => Promise<QuotaTake>
  /** Calls counted today: for the deployment and for the subject. */
  usage: (subject: string | undefined, day: number) => Promise<{ used: number, subjectUsed: number }>
  /** Counts one call in the minute `window` (minutes since the epoch); returns the count so far. */
  pace: (window: number) => Promise<number>
  /** Until when (ms since the epoch) Alpha Vantage's "daily limit" answer holds new calls back; 0 if it does not. */
  blockedUntil: () => Promise<number>
  /** Holds new calls back until `until`; `forMs` is the same moment as a duration (for a TTL). */
  block: (until: number, forMs: number) => Promise<void>
}

export class MemoryQuotaStore implements QuotaStore {
  #day = -1
  #used = 0
  readonly #subjects = new Map<string, number>()
  #window = -1
  #paced = 0
  #blockedUntil = 0

  #roll (day: number): void {
    if (day === this.#day) return
    this.#day = day
    this.#used = 0
    this.#subjects.clear()
  }

  async take (subject: string | undefined, limits: QuotaLimits): Promise<QuotaTake> {
    this.#roll(limits.day)
    const subjectUsed = subject === undefined ? 0 : this.#subjects.get(subject) ?? 0
    if (this.#used >= limits.dailyLimit) return { ok: false, refusal: 'daily', used: this.#used, subjectUsed }
    if (subject !== undefined && subjectUsed >= limits.subjectLimit) return { ok: false, refusal: 'share', used: this.#used, subjectUsed }
    this.#used++
    if (subject !== undefined) this.#subjects.set(subject, subjectUsed + 1)
    return { ok: true, used: this.#used, subjectUsed: subject === undefined ? 0 : subjectUsed + 1 }
  }

  async usage (subject: string | undefined, day: number): Promise<{ used: number, subjectUsed: number }> {
    this.#roll(day)
    return { used: this.#used, subjectUsed: subject === undefined ? 0 : this.#subjects.get(subject) ?? 0 }
  }

  async pace (window: number): Promise<number> {
    if (window !== this.#window) {
      this.#window = window
      this.#paced = 0
    }
    return ++this.#paced
  }

  async blockedUntil (): Promise<number> {
    return this.#blockedUntil
  }

  async block (until: number): Promise<void> {
    this.#blockedUntil = until
  }
}

/*
 * One script, so that the check and the two increments are one atomic step
 * on the Redis server (never read-then-write across replicas). Both counters
 * expire when the UTC day ends: nothing to clean up.
 * KEYS: day counter, subject counter (or the day counter again without a subject)
 * ARGV: daily limit, subject limit, reset (ms since the epoch), has subject (0/1)
 */
const TAKE = `
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local mine = 0
if ARGV[4] == '1' then mine = tonumber(redis.call('GET', KEYS[2]) or '0') end
if used >= tonumber(ARGV[1]) then return {0, 1, used, mine} end
if ARGV[4] == '1' and mine >= tonumber(ARGV[2]) then return {0, 2, used, mine} end
used = redis.call('INCR', KEYS[1])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
if ARGV[4] == '1' then
  mine = redis.call('INCR', KEYS[2])
  redis.call('PEXPIREAT', KEYS[2], ARGV[3])
end
return {1, 0, used, mine}
`

export interface RedisQuotaStoreOptions {
  redis: Redis
  /** Builds a key in the deployment's namespace. */
  key: (...parts: string[]) => string
}

/**
 * The counters in Redis: one day count for the whole deployment, so N
 * replicas spend the key once, not N times; a subject's share is counted
 * once too, whichever replica it reaches.
 */
export class RedisQuotaStore implements QuotaStore {
  readonly #redis: Redis
  readonly #key: RedisQuotaStoreOptions['key']

  constructor (opts: RedisQuotaStoreOptions) {
    this.#redis = opts.redis
    this.#key = opts.key
    if (typeof (this.#redis as unknown as { newsQuotaTake?: unknown }).newsQuotaTake !== 'function') {
      this.#redis.defineCommand('newsQuotaTake', { numberOfKeys: 2, lua: TAKE })
    }
  }

  async take (subject: string | undefined, limits: QuotaLimits): Promise<QuotaTake> {
    const dayKey = this.#key('news', 'quota', String(limits.day))
    const subjectKey = subject === undefined ? dayKey : this.#key('news', 'quota', String(limits.day), 'subject', subject)
    const run = (this.#redis as unknown as { newsQuotaTake: (...args: Array<string | number>) => Promise<number[]> }).newsQuotaTake
    const [ok, refusal, used, subjectUsed] = await run.call(this.#redis, dayKey, subjectKey, limits.dailyLimit, limits.subjectLimit, limits.resetsAt, subject === undefined ? 0 : 1) as [number, number, number, number]
    return ok === 1
      ? { ok: true, used, subjectUsed }
      : { ok: false, refusal: refusal === 1 ? 'daily' : 'share', used, subjectUsed }
  }

  async usage (subject: string | undefined, day: number): Promise<{ used: number, subjectUsed: number }> {
    const dayKey = this.#key('news', 'quota', String(day))
    const [used, mine] = await this.#redis.mget(dayKey, subject === undefined ? dayKey : this.#key('news', 'quota', String(day), 'subject', subject))
    return { used: Number(used ?? 0), subjectUsed: subject === undefined ? 0 : Number(mine ?? 0) }
  }

  async pace (window: number): Promise<number> {
    const key = this.#key('news', 'pace', String(window))
    const [[, count]] = await this.#redis.multi().incr(key).pexpire(key, 120_000).exec() as [[Error | null, number]]
    return count
  }

  async blockedUntil (): Promise<number> {
    return Number(await this.#redis.get(this.#key('news', 'blocked-until')) ?? 0)
  }

  async block (until: number, forMs: number): Promise<void> {
    await this.#redis.set(this.#key('news', 'blocked-until'), String(until), 'PX', Math.max(1, forMs))
  }
}

/**
 * The shared store while Redis answers, this process's own counters while it
 * does not: a Redis outage costs the deployment its single count (each
 * replica then counts alone, as without Redis) but never an answer.
 */
export class FallbackQuotaStore implements QuotaStore {
  readonly #local = new MemoryQuotaStore()
  #degraded = false

  constructor (
    readonly shared: QuotaStore,
    readonly available: () => boolean,
    readonly log: { warn: (obj: object, msg: string) => void }
  ) {}

  async #either<T> (op: (store: QuotaStore) => Promise<T>): Promise<T> {
    if (this.available()) {
      try {
        const result = await op(this.shared)
        this.#degraded = false
        return result
      } catch (err) {
        if (!this.#degraded) this.log.warn({ err: { message: (err as Error).message } }, 'news quota: Redis failed; this replica counts alone until it returns')
        this.#degraded = true
      }
    }
    return await op(this.#local)
  }

  async take (subject: string | undefined, limits: QuotaLimits): Promise<QuotaTake> {
    return await this.#either(async s => await s.take(subject, limits))
  }

  async usage (subject: string | undefined, day: number): Promise<{ used: number, subjectUsed: number }> {
    return await this.#either(async s => await s.usage(subject, day))
  }

  async pace (window: number): Promise<number> {
    return await this.#either(async s => await s.pace(window))
  }

  async blockedUntil (): Promise<number> {
    return await this.#either(async s => await s.blockedUntil())
  }

  async block (until: number, forMs: number): Promise<void> {
    await this.#local.block(until)
    await this.#either(async s => { await s.block(until, forMs) })
  }
}
