import t, { type Test } from 'tap'
import type { FastifyBaseLogger } from 'fastify'
import { MemoryResponseCache, RedisResponseCache, type CacheEntry, type RedisCacheOptions, type RedisLink, type ResponseCache } from '../../../lib/news/cache.js'
import { SharedRedis } from '../../../plugins/redis.js'
import { RedisServer } from '../../helpers/redis-server.js'
import { freePort } from '../../helpers/mcp-app.js'
import { Redis } from 'ioredis'

function cache (opts: { maxEntries?: number, maxBytes?: number, retentionMs?: number } = {}): { cache: MemoryResponseCache<string>, clock: { now: number } } {
  const clock = { now: 1_000_000 }
  return {
    cache: new MemoryResponseCache<string>({ maxEntries: 3, maxBytes: 1000, retentionMs: 60_000, now: () => clock.now, ...opts }),
    clock
  }
}

t.test('least recently used goes first when the entry bound is reached', async t => {
  const { cache: c, clock } = cache()
  t.equal(c.retentionMs, 60_000)
  for (const k of ['a', 'b', 'c']) await c.set(k, { value: k, storedAt: clock.now, bytes: 10 })
  t.equal((await c.get('a'))?.value, 'a', 'a is now the most recent')
  await c.set('d', { value: 'd', storedAt: clock.now, bytes: 10 })
  t.equal(c.size, 3)
  t.equal(await c.get('b'), undefined, 'b, least recently used, was evicted')
  t.equal((await c.get('a'))?.value, 'a')
  t.equal((await c.get('c'))?.value, 'c')
  t.equal((await c.get('d'))?.value, 'd')
  t.equal(c.bytes, 30)
})

t.test('the byte bound evicts the oldest until it fits', async t => {
  const { cache: c, clock } = cache({ maxEntries: 10, maxBytes: 100 })
  await c.set('a', { value: 'a', storedAt: clock.now, bytes: 40 })
  await c.set('b', { value: 'b', storedAt: clock.now, bytes: 40 })
  await c.set('c', { value: 'c', storedAt: clock.now, bytes: 50 })
  t.equal(await c.get('a'), undefined)
  t.equal(c.bytes, 90)
  t.equal(c.size, 2)
  await c.set('d', { value: 'd', storedAt: clock.now, bytes: 100 })
  t.equal(c.size, 1, 'an entry of the whole budget pushes out every other')
  t.equal(c.bytes, 100)
})

t.test('replacing an entry counts its bytes once', async t => {
  const { cache: c, clock } = cache()
  await c.set('a', { value: 'one', storedAt: clock.now, bytes: 300 })
  await c.set('a', { value: 'two', storedAt: clock.now, bytes: 200 })
  t.equal(c.bytes, 200)
  t.equal(c.size, 1)
  t.equal((await c.get('a'))?.value, 'two')
})

t.test('an entry larger than the budget is not kept (and replaces nothing stale)', async t => {
  const { cache: c, clock } = cache({ maxBytes: 100 })
  await c.set('a', { value: 'small', storedAt: clock.now, bytes: 10 })
  await c.set('a', { value: 'huge', storedAt: clock.now, bytes: 101 })
  t.equal(await c.get('a'), undefined, 'neither the huge one nor the value it replaced')
  t.equal(c.bytes, 0)
  t.equal(c.size, 0)
})

t.test('entries past retention are gone', async t => {
  const { cache: c, clock } = cache({ retentionMs: 1000 })
  await c.set('a', { value: 'a', storedAt: clock.now, bytes: 10 })
  clock.now += 1000
  t.equal((await c.get('a'))?.value, 'a', 'kept up to the retention')
  clock.now += 1
  t.equal(await c.get('a'), undefined, 'gone after it')
  t.equal(c.bytes, 0)
  t.equal(c.size, 0)
})

t.test('the wall clock by default', async t => {
  const c = new MemoryResponseCache<string>({ maxEntries: 2, maxBytes: 100, retentionMs: 1000 })
  await c.set('old', { value: 'old', storedAt: Date.now() - 2000, bytes: 1 })
  await c.set('new', { value: 'new', storedAt: Date.now(), bytes: 1 })
  t.equal(await c.get('old'), undefined)
  t.equal((await c.get('new'))?.value, 'new')
})

/* ---- One suite, both implementations: what every replica sees (issue 9.3) ---- */

interface Bounds { maxEntries: number, maxBytes: number, retentionMs: number }
interface Impl {
  /** The cache a replica writes through. */
  writer: (bounds: Bounds) => Promise<ResponseCache<string>>
  /** What a replica reads: for Redis, another replica with nothing in its own memory. */
  reader: (bounds: Bounds) => Promise<ResponseCache<string>>
}

async function sharedRedis (t: Test, server?: RedisServer): Promise<SharedRedis> {
  const redis = server ?? await RedisServer.start(t)
  const link = new SharedRedis({ url: redis.url, keyPrefix: `t${Math.random().toString(36).slice(2)}:`, connectTimeoutMs: 500, commandTimeoutMs: 500 }, silentLog)
  t.teardown(async () => { await link.close() })
  const deadline = Date.now() + 5000
  while (!link.available && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
  return link
}

function redisCache (link: RedisLink, bounds: Bounds, over: Partial<RedisCacheOptions> = {}): RedisResponseCache<string> {
  return new RedisResponseCache<string>({
    redis: link,
    ...bounds,
    freshMs: 60_000,
    lockMs: 1000,
    reviveError: f => new Error(f.message),
    isPrivateFailure: () => false,
    ...over
  })
}

const silentLog = { warn: () => {}, info: () => {}, error: () => {}, debug: () => {}, trace: () => {}, fatal: () => {}, child: () => silentLog, level: 'silent' } as unknown as FastifyBaseLogger

const implementations: Array<[string, (t: Test) => Promise<Impl>]> = [
  ['memory', async () => {
    let shared: MemoryResponseCache<string> | undefined
    const make = async (b: Bounds): Promise<MemoryResponseCache<string>> => (shared ??= new MemoryResponseCache<string>(b))
    return { writer: make, reader: make }
  }],
  ['redis', async t => {
    const link = await sharedRedis(t)
    return { writer: async b => redisCache(link, b), reader: async b => redisCache(link, b) }
  }]
]

for (const [name, implementation] of implementations) {
  t.test(`${name}: what one replica stores, another reads; the bounds hold`, async t => {
    const impl = await implementation(t)
    const bounds = { maxEntries: 3, maxBytes: 100, retentionMs: 60_000 }
    const w = await impl.writer(bounds)
    const now = Date.now()
    t.equal(w.retentionMs, 60_000)
    t.equal(await (await impl.reader(bounds)).get('none'), undefined)
    for (const k of ['a', 'b', 'c', 'd']) await w.set(k, { value: `value ${k}`, storedAt: now, bytes: 10 })
    const read = async (k: string): Promise<string | undefined> => (await (await impl.reader(bounds)).get(k))?.value
    t.equal(await read('a'), undefined, 'the oldest went at the entry bound')
    t.same(await (await impl.reader(bounds)).get('d'), { value: 'value d', storedAt: now, bytes: 10 }, 'value, time and size come back')

    await w.set('e', { value: 'e', storedAt: now, bytes: 50 })
    await w.set('f', { value: 'f', storedAt: now, bytes: 40 })
    t.equal(await read('b'), undefined, 'the entry bound, again')
    t.equal(await read('c'), undefined, 'the byte bound evicts the oldest until it fits (110 > 100)')
    t.equal(await read('d'), 'value d', 'and no more')
    t.equal(await read('e'), 'e')
    t.equal(await read('f'), 'f')

    await w.set('f', { value: 'huge', storedAt: now, bytes: 101 })
    t.equal(await read('f'), undefined, 'an entry over the budget is not kept, nor the value it replaced')
  })

  t.test(`${name}: entries past retention are gone`, async t => {
    const impl = await implementation(t)
    const bounds = { maxEntries: 3, maxBytes: 100, retentionMs: 300 }
    await (await impl.writer(bounds)).set('a', { value: 'a', storedAt: Date.now(), bytes: 1 })
    t.equal((await (await impl.reader(bounds)).get('a'))?.value, 'a')
    await new Promise(resolve => setTimeout(resolve, 400))
    t.equal(await (await impl.reader(bounds)).get('a'), undefined)
  })
}

/* ---- Redis only: the local copy, coalescing across replicas, failing Redis (issues 9.3, 9.6) ---- */

async function untilLocked (link: RedisLink, key: string): Promise<void> {
  while (await link.client.exists(link.key('news', 'lock', key)) === 0) await new Promise(resolve => setTimeout(resolve, 5))
}

const BOUNDS = { maxEntries: 10, maxBytes: 10_000, retentionMs: 60_000 }

t.test('redis: a fresh local copy is served without Redis; a stale one gives way to a newer answer from another replica', async t => {
  const link = await sharedRedis(t)
  const a = redisCache(link, BOUNDS, { freshMs: 5000 })
  const b = redisCache(link, BOUNDS, { freshMs: 5000 })
  const now = Date.now()
  await a.set('k', { value: 'old', storedAt: now - 10_000, bytes: 1 })
  await b.set('k', { value: 'new', storedAt: now, bytes: 1 })
  t.equal((await a.get('k'))?.value, 'new', 'not fresh here: Redis asked, the newer answer taken')
  t.equal(a.local.size, 1)
  await link.client.del(link.key('news', 'entry', 'k'))
  t.equal((await a.get('k'))?.value, 'new', 'fresh here: Redis not asked')
})

t.test('redis: concurrent identical questions on two replicas make one fetch; the waiters get its entry', async t => {
  const link = await sharedRedis(t)
  const replicas = [redisCache(link, BOUNDS), redisCache(link, BOUNDS)]
  let fetches = 0
  const fetchOn = (cache: RedisResponseCache<string>) => async (): Promise<CacheEntry<string>> => {
    fetches++
    await new Promise(resolve => setTimeout(resolve, 150))
    const entry = { value: 'answer', storedAt: Date.now(), bytes: 6 }
    await cache.set('q', entry)
    return entry
  }
  const results = await Promise.all(Array.from({ length: 6 }, async (_, i) => {
    const cache = replicas[i % 2]!
    return await cache.coalesce('q', fetchOn(cache))
  }))
  t.equal(fetches, 1, 'one fetch for six callers on two replicas')
  for (const r of results) t.equal(r.value, 'answer')
  t.equal(await link.client.exists(link.key('news', 'lock', 'q')), 0, 'the lock is released')
})

t.test('redis: the holder\'s failure reaches the waiters; a private failure lets a waiter ask itself', async t => {
  const link = await sharedRedis(t)
  const revived: Array<{ kind?: string, message: string }> = []
  const opts = {
    reviveError: (f: { kind?: string, message: string }) => { revived.push(f); return Object.assign(new Error(f.message), { kind: f.kind }) },
    isPrivateFailure: (err: unknown) => (err as { private?: boolean }).private === true
  }
  const a = redisCache(link, BOUNDS, opts)
  const b = redisCache(link, BOUNDS, opts)
  const failing = (extra: object) => async (): Promise<CacheEntry<string>> => {
    await new Promise(resolve => setTimeout(resolve, 100))
    throw Object.assign(new Error('Alpha Vantage is unavailable'), { kind: 'unavailable' }, extra)
  }
  const holder = a.coalesce('q', failing({}))
  await untilLocked(link, 'q')
  const waiter = b.coalesce('q', async () => { throw new Error('the waiter must not fetch') })
  await t.rejects(holder, { message: 'Alpha Vantage is unavailable' })
  await t.rejects(waiter, { message: 'Alpha Vantage is unavailable', kind: 'unavailable' })
  t.same(revived, [{ kind: 'unavailable', message: 'Alpha Vantage is unavailable' }])

  const privateHolder = a.coalesce('p', failing({ private: true }))
  await untilLocked(link, 'p')
  let own = 0
  const other = b.coalesce('p', async () => { own++; const e = { value: 'own', storedAt: Date.now(), bytes: 3 }; await b.set('p', e); return e })
  await t.rejects(privateHolder)
  t.equal((await other).value, 'own', 'the waiter asked in its own name')
  t.equal(own, 1)
})

t.test('redis: a lock whose holder died expires; the waiter then asks itself', async t => {
  const link = await sharedRedis(t)
  const cache = redisCache(link, BOUNDS, { lockMs: 300 })
  await link.client.set(link.key('news', 'lock', 'q'), 'a replica that crashed', 'PX', 300)
  const started = Date.now()
  const entry = await cache.coalesce('q', async () => ({ value: 'mine', storedAt: Date.now(), bytes: 4 }))
  t.equal(entry.value, 'mine')
  t.ok(Date.now() - started >= 250, 'it waited for the lock\'s lifetime, not for ever')
})

t.test('redis: when Redis fails the cache answers from memory without throwing, and uses Redis again when it returns (issue 9.6)', async t => {
  const server = await RedisServer.start(t)
  const link = await sharedRedis(t, server)
  const warnings: string[] = []
  const infos: string[] = []
  const log = { warn: (_o: unknown, msg: string) => warnings.push(msg), info: (msg: string) => infos.push(msg) } as unknown as FastifyBaseLogger
  const cache = redisCache(link, BOUNDS, { freshMs: 1, log })
  await cache.set('before', { value: 'kept here', storedAt: Date.now() - 10, bytes: 1 })

  // Redis goes away while this replica holds a question's lock: the answer still comes back.
  const held = await cache.coalesce('held', async () => { await server.stop(); return { value: 'answered', storedAt: Date.now(), bytes: 1 } })
  t.equal(held.value, 'answered', 'the lock could not be released; the caller gets its answer all the same')
  const deadline = Date.now() + 5000
  while (link.available && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
  t.equal((await cache.get('before'))?.value, 'kept here', 'the local copy answers')
  await cache.set('during', { value: 'local only', storedAt: Date.now(), bytes: 1 })
  t.equal((await cache.get('during'))?.value, 'local only')
  let fetched = 0
  t.equal((await cache.coalesce('q', async () => { fetched++; return { value: 'alone', storedAt: Date.now(), bytes: 1 } })).value, 'alone', 'coalescing degrades to this replica')
  t.equal(fetched, 1)

  await server.start()
  while (!link.available && Date.now() < deadline + 10_000) await new Promise(resolve => setTimeout(resolve, 20))
  await cache.set('after', { value: 'shared again', storedAt: Date.now(), bytes: 1 })
  t.match(await link.client.get(link.key('news', 'entry', 'after')), /shared again/, 'written to Redis again')
  t.equal((await redisCache(link, BOUNDS).get('after'))?.value, 'shared again', 'another replica reads it')
  t.ok(warnings.length <= 1, 'an outage is logged once at most')
})

t.test('redis: a subscription that fails makes this replica ask alone, and is tried again next time', async t => {
  const link = await sharedRedis(t)
  // A subscriber connection that cannot reach Redis (as after a failover), the main one fine.
  const deadSubscriber = new Redis(`redis://127.0.0.1:${await freePort()}`, { enableOfflineQueue: false, lazyConnect: true, maxRetriesPerRequest: 0 })
  t.teardown(() => deadSubscriber.disconnect())
  const broken = { client: link.client, subscriber: deadSubscriber, available: true, key: link.key.bind(link) }
  const cache = redisCache(broken, BOUNDS)
  let fetched = 0
  const fetch = async (): Promise<CacheEntry<string>> => { fetched++; return { value: 'alone', storedAt: Date.now(), bytes: 1 } }
  t.equal((await cache.coalesce('q', fetch)).value, 'alone')
  t.equal((await cache.coalesce('q', fetch)).value, 'alone')
  t.equal(fetched, 2, 'each time on its own, no error')
})

t.test('redis: a failing command (not a lost connection) degrades the same way', async t => {
  const link = await sharedRedis(t)
  const warnings: string[] = []
  const log = { warn: (_o: unknown, msg: string) => warnings.push(msg), info: () => {} } as unknown as FastifyBaseLogger
  const cache = redisCache(link, BOUNDS, { freshMs: 1, log })
  // The entry key holds a hash: GET fails with WRONGTYPE, as a misconfigured or foreign key would.
  await link.client.hset(link.key('news', 'entry', 'k'), 'x', '1')
  t.equal(await cache.get('k'), undefined)
  t.equal(warnings.length, 1)
  await link.client.del(link.key('news', 'entry', 'k'))
  // The index holds a string: the bounded SET fails; the entry is kept here all the same.
  await link.client.set(link.key('news', 'index'), 'not a sorted set')
  await cache.set('k', { value: 'here', storedAt: Date.now(), bytes: 1 })
  t.equal((await cache.get('k'))?.value, 'here')
  await link.client.del(link.key('news', 'index'))
  await cache.set('k', { value: 'v', storedAt: Date.now(), bytes: 1 })
  t.equal((await redisCache(link, BOUNDS).get('k'))?.value, 'v', 'working again at once')
})
