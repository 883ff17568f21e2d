import t, { type Test } from 'tap'
import type { FastifyBaseLogger } from 'fastify'
import { FallbackQuotaStore, MemoryQuotaStore, RedisQuotaStore, type QuotaStore } from '../../../lib/news/quota.js'
import { SharedRedis } from '../../../plugins/redis.js'
import { RedisServer } from '../../helpers/redis-server.js'

const silentLog = { warn: () => {}, info: () => {}, error: () => {}, debug: () => {}, trace: () => {}, fatal: () => {}, child: () => silentLog, level: 'silent' } as unknown as FastifyBaseLogger

async function link (t: Test, server?: RedisServer): Promise<SharedRedis> {
  const redis = server ?? await RedisServer.start(t)
  const shared = new SharedRedis({ url: redis.url, keyPrefix: `q${Math.random().toString(36).slice(2)}:`, connectTimeoutMs: 500, commandTimeoutMs: 500 }, silentLog)
  t.teardown(async () => { await shared.close() })
  const deadline = Date.now() + 5000
  while (!shared.available && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
  return shared
}

const DAY = Math.floor(Date.now() / 86_400_000)
const limits = { day: DAY, resetsAt: (DAY + 1) * 86_400_000, dailyLimit: 5, subjectLimit: 2 }

/** Two "replicas": for memory the same store (one process), for Redis two stores on one Redis. */
const implementations: Array<[string, (t: Test) => Promise<[QuotaStore, QuotaStore]>]> = [
  ['memory', async () => { const s = new MemoryQuotaStore(); return [s, s] }],
  ['redis', async t => {
    const l = await link(t)
    return [new RedisQuotaStore({ redis: l.client, key: l.key.bind(l) }), new RedisQuotaStore({ redis: l.client, key: l.key.bind(l) })]
  }]
]

for (const [name, make] of implementations) {
  t.test(`${name}: the day's count and each subject's share, counted once for every replica (issues 8.4, 9.4)`, async t => {
    const [a, b] = await make(t)
    t.same(await a.take('alice', limits), { ok: true, used: 1, subjectUsed: 1 })
    t.same(await b.take('alice', limits), { ok: true, used: 2, subjectUsed: 2 }, 'the other replica sees the same counts')
    t.same(await a.take('alice', limits), { ok: false, refusal: 'share', used: 2, subjectUsed: 2 }, 'alice\'s share is spent')
    t.same(await b.take('bob', limits), { ok: true, used: 3, subjectUsed: 1 }, 'bob still has his')
    t.same(await a.take(undefined, limits), { ok: true, used: 4, subjectUsed: 0 }, 'no subject: the day only')
    t.same(await b.take('carol', limits), { ok: true, used: 5, subjectUsed: 1 })
    t.same(await a.take('dave', limits), { ok: false, refusal: 'daily', used: 5, subjectUsed: 0 }, 'the day is spent for everyone')
    t.same(await b.usage('alice', DAY), { used: 5, subjectUsed: 2 })
    t.same(await b.usage(undefined, DAY), { used: 5, subjectUsed: 0 })
    t.same(await a.usage('nobody', DAY), { used: 5, subjectUsed: 0 }, 'a subject never seen: nothing used')
    t.same(await a.usage('alice', DAY + 5), { used: 0, subjectUsed: 0 }, 'a day not yet counted: nothing used')
    t.same(await a.take('alice', { ...limits, day: DAY + 1, resetsAt: limits.resetsAt + 86_400_000 }), { ok: true, used: 1, subjectUsed: 1 }, 'a new day starts at zero')
  })

  t.test(`${name}: the pace counts calls per minute window across replicas; the daily-limit block is shared (issue 13.6)`, async t => {
    const [a, b] = await make(t)
    t.equal(await a.pace(100), 1)
    t.equal(await b.pace(100), 2)
    t.equal(await a.pace(101), 1, 'a new window')
    t.equal(await b.blockedUntil(), 0)
    const until = Date.now() + 60_000
    await a.block(until, 60_000)
    t.equal(await b.blockedUntil(), until)
  })
}

t.test('redis: the counters expire with the day, the block with its interval: no key outlives its use', async t => {
  const l = await link(t)
  const store = new RedisQuotaStore({ redis: l.client, key: l.key.bind(l) })
  const resetsAt = Date.now() + 10_000
  await store.take('alice', { ...limits, resetsAt })
  const ttl = await l.client.pttl(l.key('news', 'quota', String(DAY)))
  t.ok(ttl > 9000 && ttl <= 10_000, `the day counter expires at the reset (${ttl} ms)`)
  t.ok(await l.client.pttl(l.key('news', 'quota', String(DAY), 'subject', 'alice')) > 9000)
  await store.pace(7)
  t.ok(await l.client.pttl(l.key('news', 'pace', '7')) > 60_000)
  await store.block(Date.now() + 5000, 5000)
  t.ok(await l.client.pttl(l.key('news', 'blocked-until')) <= 5000)
})

t.test('the fallback: Redis while it answers, this process\'s own counters while it does not, Redis again when it returns (issue 9.6)', async t => {
  const server = await RedisServer.start(t)
  const l = await link(t, server)
  const warnings: string[] = []
  const store = new FallbackQuotaStore(new RedisQuotaStore({ redis: l.client, key: l.key.bind(l) }), () => l.available, { warn: (_o, msg) => warnings.push(msg) })
  t.same(await store.take('alice', limits), { ok: true, used: 1, subjectUsed: 1 })

  // A command that fails while the connection is up: counted locally, logged once.
  await l.client.del(l.key('news', 'quota', String(DAY)))
  await l.client.hset(l.key('news', 'quota', String(DAY)), 'x', '1')
  t.same(await store.take('alice', limits), { ok: true, used: 1, subjectUsed: 1 }, 'the local count')
  t.equal(await store.pace(5), 1)
  t.equal(warnings.length, 1)
  await l.client.del(l.key('news', 'quota', String(DAY)))

  await server.stop()
  const deadline = Date.now() + 5000
  while (l.available && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 10))
  t.same(await store.usage('alice', DAY), { used: 1, subjectUsed: 1 }, 'Redis gone: the local counters, no error')
  await store.block(Date.now() + 1000, 1000)
  t.ok(await store.blockedUntil() > Date.now(), 'the block holds locally')

  await server.start()
  while (!l.available && Date.now() < deadline + 10_000) await new Promise(resolve => setTimeout(resolve, 20))
  t.same(await store.take('bob', limits), { ok: true, used: 1, subjectUsed: 1 }, 'Redis again (it lost its data with the restart)')
  t.equal(await l.client.get(l.key('news', 'quota', String(DAY))), '1')
})
