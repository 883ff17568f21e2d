// One suite, run against both session stores: what the MCP transport relies
// on must hold in memory and in Redis alike.
import t, { type Test } from 'tap'
import {
  MemorySessionStore, SessionLimitError, SessionStoreUnavailableError, sessionOwner,
  type McpSession, type SessionEndReason, type SessionStore
} from '../../../lib/mcp/session-store.js'
import { RedisSessionStore } from '../../../lib/mcp/redis-session-store.js'
import { RedisServer, sharedRedis, until } from '../../helpers/redis-server.js'

interface Limits { idleTtlMs?: number, maxSessions?: number, maxSessionsPerSubject?: number }
interface Made { sessions: SessionStore, ended: Array<[string, SessionEndReason]> }
type Factory = (t: Test, limits?: Limits) => Promise<Made>

const sleep = async (ms: number): Promise<void> => { await new Promise(resolve => setTimeout(resolve, ms)) }
const ALICE = sessionOwner('user:alice', 'app-a')

function limits (l: Limits): Required<Limits> {
  return { idleTtlMs: l.idleTtlMs ?? 60_000, maxSessions: l.maxSessions ?? 100, maxSessionsPerSubject: l.maxSessionsPerSubject ?? 10 }
}

const memory: Factory = async (t, l = {}) => {
  const ended: Made['ended'] = []
  const sessions = new MemorySessionStore({ ...limits(l), onEnd: (s, reason) => { ended.push([s.id, reason]) } })
  t.teardown(() => sessions.close())
  return { sessions, ended }
}

let server: RedisServer
let n = 0
const redis: Factory = async (t, l = {}) => {
  // A fresh namespace per test: the same Redis, no state shared between tests.
  const link = await sharedRedis(t, server, `suite${++n}:`)
  const ended: Made['ended'] = []
  // Every use refreshes, so that "least recently used" is exact for the test.
  const sessions = new RedisSessionStore(link, { ...limits(l), refreshEveryMs: 0, onEnd: (s, reason) => { ended.push([s.id, reason]) } })
  t.teardown(() => sessions.close())
  await until('subscribed', () => sessions.listening)
  return { sessions, ended }
}

t.before(async () => { server = await RedisServer.start(t) })

for (const [name, make] of [['MemorySessionStore', memory], ['RedisSessionStore', redis]] as Array<[string, Factory]>) {
  t.test(name, async t => {
    t.test('the client\'s capabilities and its log level are kept with the session', async t => {
      const { sessions } = await make(t)
      const s = await sessions.create(ALICE, '2025-11-25', undefined, 5)
      t.equal(s.clientCapabilities, 5)
      t.equal(s.logLevel, undefined, 'no level until the client sets one')
      await sessions.setLogLevel(s.id, 3)
      t.equal((await sessions.use(s.id, ALICE))?.logLevel, 3)
      await sessions.setLogLevel('unknown', 2)
      t.equal(sessions.get('unknown'), undefined, 'a level for no session makes none')
      t.equal((await sessions.create(ALICE, 'v', undefined)).clientCapabilities, 0)
    })

    t.test('a session is found by its owner only, and another owner does not keep it alive', async t => {
      const { sessions } = await make(t, { idleTtlMs: 400 })
      const s = await sessions.create(ALICE, '2025-06-18', { name: 'c', version: '1' })
      t.match(s, { subject: ALICE, protocolVersion: '2025-06-18', clientInfo: { name: 'c', version: '1' }, stream: undefined, inflight: undefined })
      t.match(s.id, /^[A-Za-z0-9_-]{32}$/)
      t.equal(await sessions.use(s.id, ALICE), s)
      t.equal(sessions.get(s.id), s)
      t.same([...sessions.values()], [s])
      t.equal(sessions.size, 1)
      // The same user through another client, and a client named like the user: strangers.
      t.equal(await sessions.use(s.id, sessionOwner('user:alice', 'app-b')), undefined)
      t.equal(await sessions.use(s.id, sessionOwner('client:alice', 'alice')), undefined)
      t.equal(await sessions.use('unknown', ALICE), undefined)
      // Another owner's requests past the idle TTL do not refresh it.
      for (let i = 0; i < 5; i++) {
        await sleep(100)
        await sessions.use(s.id, sessionOwner('user:mallory', 'app-a'))
      }
      t.equal(await sessions.use(s.id, ALICE), undefined, 'it idled out')
    })

    t.test('an idle session expires; a used one does not', async t => {
      const { sessions } = await make(t, { idleTtlMs: 300 })
      const used = await sessions.create(ALICE, 'v', undefined)
      const idle = await sessions.create(ALICE, 'v', undefined)
      for (let i = 0; i < 4; i++) {
        await sleep(120)
        t.equal(await sessions.use(used.id, ALICE), used, `in use after ${(i + 1) * 120} ms`)
      }
      t.equal(await sessions.use(idle.id, ALICE), undefined, 'idle past the TTL')
    })

    t.test('end removes the session, aborts its calls here and reports once', async t => {
      const { sessions, ended } = await make(t)
      const s: McpSession = await sessions.create(ALICE, 'v', undefined)
      const call = new AbortController()
      s.inflight = new Map([[1, call]])
      t.equal(await sessions.end(s.id, 'deleted'), true)
      t.equal(call.signal.aborted, true)
      t.equal(await sessions.use(s.id, ALICE), undefined)
      t.equal(await sessions.end(s.id, 'deleted'), false, 'a second end is a no-op')
      t.same(ended, [[s.id, 'deleted']])
    })

    t.test("an owner at its cap loses its own least recently used session, not another's", async t => {
      const { sessions, ended } = await make(t, { maxSessionsPerSubject: 2 })
      const otherClient = await sessions.create(sessionOwner('user:alice', 'app-b'), 'v', undefined)
      const busy = await sessions.create(ALICE, 'v', undefined)
      await sleep(5)
      const idle = await sessions.create(ALICE, 'v', undefined)
      await sleep(5)
      await sessions.use(busy.id, ALICE)
      await sleep(5)
      const third = await sessions.create(ALICE, 'v', undefined)
      t.same(ended, [[idle.id, 'evicted']])
      t.equal(await sessions.use(idle.id, ALICE), undefined)
      t.equal(await sessions.use(busy.id, ALICE), busy, 'the session in use survives')
      t.equal(await sessions.use(third.id, ALICE), third)
      t.ok(await sessions.use(otherClient.id, sessionOwner('user:alice', 'app-b')), "the same user's other client keeps its session")
    })

    t.test('a full store refuses new sessions until one idles out', async t => {
      const { sessions } = await make(t, { idleTtlMs: 300, maxSessions: 2 })
      await sessions.create(sessionOwner('user:a', undefined), 'v', undefined)
      await sessions.create(sessionOwner('user:b', undefined), 'v', undefined)
      await t.rejects(async () => await sessions.create(ALICE, 'v', undefined), SessionLimitError)
      await sleep(400)
      if (sessions instanceof MemorySessionStore) sessions.sweep()
      const c = await sessions.create(ALICE, 'v', undefined)
      t.equal(await sessions.use(c.id, ALICE), c)
    })

    t.test('cancel aborts the named call of the session', async t => {
      const { sessions } = await make(t)
      const s = await sessions.create(ALICE, 'v', undefined)
      sessions.cancel(s.id, 'r1') // nothing in flight yet
      const call = new AbortController()
      s.inflight = new Map([['r1', call]])
      sessions.cancel(s.id, 'other')
      sessions.cancel('unknown', 'r1')
      t.equal(call.signal.aborted, false)
      sessions.cancel(s.id, 'r1')
      t.equal(call.signal.aborted, true)
    })

    t.test('close ends what this replica holds, with reason shutdown', async t => {
      const { sessions, ended } = await make(t)
      const s = await sessions.create(ALICE, 'v', undefined)
      await sessions.close()
      t.same(ended, [[s.id, 'shutdown']])
      t.equal(sessions.size, 0)
    })
  })
}

t.test('RedisSessionStore across replicas', async t => {
  async function replicas (t: Test, l: Limits = {}): Promise<[Made, Made]> {
    const prefix = `replicas${++n}:`
    const made: Made[] = []
    for (let i = 0; i < 2; i++) {
      const link = await sharedRedis(t, server, prefix)
      const ended: Made['ended'] = []
      const sessions = new RedisSessionStore(link, { ...limits(l), onEnd: (s, reason) => { ended.push([s.id, reason]) } })
      t.teardown(() => sessions.close())
      await until('subscribed', () => sessions.listening)
      made.push({ sessions, ended })
    }
    return made as [Made, Made]
  }

  t.test('a session opened on A is used on B; deleted on B, A forgets it at once', async t => {
    const [a, b] = await replicas(t)
    const s = await a.sessions.create(ALICE, '2025-03-26', { name: 'sdk', version: '2' })
    t.equal(await b.sessions.use(s.id, sessionOwner('user:mallory', 'app-a')), undefined, 'B, asked by another owner, says nothing and keeps no copy')
    t.equal(b.sessions.get(s.id), undefined)
    const onB = await b.sessions.use(s.id, ALICE) as McpSession
    t.match(onB, { id: s.id, subject: ALICE, protocolVersion: '2025-03-26', clientInfo: { name: 'sdk', version: '2' }, createdAt: s.createdAt })
    t.equal(b.sessions.use(s.id, ALICE), onB, 'B answers from its copy now, synchronously')
    const call = new AbortController()
    s.inflight = new Map([[7, call]])
    b.sessions.cancel(s.id, 7)
    await until('the cancel reaches A', () => call.signal.aborted)
    t.pass('a cancel landing on B aborts the call running on A')
    t.equal(await b.sessions.end(s.id, 'deleted'), true)
    await until('A learns of the deletion', () => a.sessions.get(s.id) === undefined)
    t.same(a.ended, [[s.id, 'deleted']])
    t.equal(await a.sessions.use(s.id, ALICE), undefined)
  })

  t.test('the log level set on A is known on B: at once for its copy, from Redis for a new one or one it could not trust', async t => {
    const [a, b] = await replicas(t, { idleTtlMs: 600 })
    const s = await a.sessions.create(ALICE, '2025-11-25', undefined, 4)
    const onB = await b.sessions.use(s.id, ALICE) as McpSession
    t.equal(onB.clientCapabilities, 4)
    t.equal(onB.logLevel, undefined)
    await a.sessions.setLogLevel(s.id, 6)
    await until('B\'s copy follows', () => onB.logLevel === 6)
    const link = await sharedRedis(t, server, 'unused:')
    const prefix = `replicas${n}:`
    // Changed behind B's back (no message): B's copy learns it when it asks Redis again, once it no longer trusts it.
    await link.client.hset(`${prefix}session:${s.id}`, 'll', '1')
    for (let i = 0; i < 8; i++) { // A keeps the session alive meanwhile
      await a.sessions.use(s.id, ALICE)
      await sleep(80)
    }
    t.equal(await b.sessions.use(s.id, ALICE), onB)
    t.equal(onB.logLevel, 1)
  })

  t.test('an idle session in Redis, with the largest clientInfo, its capabilities and a level, stays under 1 KB', async t => {
    const [a] = await replicas(t)
    const long = 'x'.repeat(64)
    const s = await a.sessions.create(sessionOwner(`user:${long}`, long), '2025-11-25', { name: long, version: long }, 127)
    await a.sessions.setLogLevel(s.id, 7)
    const link = await sharedRedis(t, server, 'unused:')
    const bytes = await link.client.memory('USAGE', `replicas${n}:session:${s.id}`) as number
    t.comment(`Redis hash of one session: ${bytes} B`)
    t.ok(bytes < 1024, `${bytes} B`)
  })

  t.test('the caps hold across replicas, and an eviction on A ends the copy on B', async t => {
    const [a, b] = await replicas(t, { maxSessionsPerSubject: 2, maxSessions: 3 })
    const first = await a.sessions.create(ALICE, 'v', undefined)
    await b.sessions.use(first.id, ALICE)
    // Last use is kept to the millisecond: two in the same one would tie, and the eviction pick either.
    await sleep(5)
    await b.sessions.create(ALICE, 'v', undefined)
    await a.sessions.create(ALICE, 'v', undefined)
    await until('B learns of the eviction', () => b.ended.length === 1)
    t.same(b.ended, [[first.id, 'evicted']])
    await b.sessions.create(sessionOwner('user:bob', undefined), 'v', undefined)
    await t.rejects(async () => await a.sessions.create(sessionOwner('user:carol', undefined), 'v', undefined), SessionLimitError, 'three in total, wherever they were opened')
  })

  t.test('concurrent creations for one owner on both replicas never exceed its cap (atomic scripts)', async t => {
    const [a, b] = await replicas(t, { maxSessionsPerSubject: 2 })
    const made = await Promise.all(Array.from({ length: 8 }, async (_, i) => await (i % 2 === 0 ? a : b).sessions.create(ALICE, 'v', undefined)))
    t.equal(made.length, 8, 'each creation succeeded, evicting the oldest')
    const link = await sharedRedis(t, server, 'unused:')
    const [key] = await link.client.keys(`replicas${n}:owner:*`)
    t.equal(await link.client.zcard(key as string), 2, 'the owner holds exactly its cap')
    t.equal(await link.client.zcard(`replicas${n}:sessions`), 2)
  })

  t.test('Redis down: every answer that needs it is "unavailable", never "no such session"; back up, service resumes', async t => {
    const own = await RedisServer.start(t, { persistent: true })
    const link = await sharedRedis(t, own, 'outage:')
    const sessions = new RedisSessionStore(link, { ...limits({}), retryAfterSec: 3 })
    t.teardown(() => sessions.close())
    await until('subscribed', () => sessions.listening)
    const s = await sessions.create(ALICE, 'v', undefined)
    await own.stop()
    await until('the loss is noticed', () => !sessions.listening && !link.available)
    const refused = await Promise.resolve().then(() => sessions.use(s.id, ALICE)).catch((err: unknown) => err)
    t.type(refused, SessionStoreUnavailableError, 'a copy is not trusted while deletions could be missed')
    t.equal((refused as SessionStoreUnavailableError).retryAfterSec, 3)
    await t.rejects(async () => await sessions.create(ALICE, 'v', undefined), SessionStoreUnavailableError)
    await t.rejects(async () => await sessions.end(s.id, 'deleted'), SessionStoreUnavailableError)
    await t.rejects(async () => await sessions.setLogLevel(s.id, 2), SessionStoreUnavailableError)
    await own.start()
    await until('reconnected and subscribed', () => sessions.listening && link.available)
    t.equal(await sessions.use(s.id, ALICE), s, 'the session acknowledged before the outage is still valid')
  })
})

t.test('RedisSessionStore keeps its copies honest', async t => {
  async function one (t: Test, l: Limits = {}): Promise<{ sessions: RedisSessionStore, link: Awaited<ReturnType<typeof sharedRedis>>, ended: Made['ended'] }> {
    const link = await sharedRedis(t, server, `honest${++n}:`)
    const ended: Made['ended'] = []
    const sessions = new RedisSessionStore(link, { ...limits(l), refreshEveryMs: 0, onEnd: (s, reason) => { ended.push([s.id, reason]) } })
    t.teardown(() => sessions.close())
    await until('subscribed', () => sessions.listening)
    return { sessions, link, ended }
  }

  t.test('a key removed behind its back (an operator flushing Redis) ends the copy at the next refresh', async t => {
    const { sessions, link, ended } = await one(t)
    const s = await sessions.create(ALICE, 'v', undefined)
    await link.client.flushdb()
    t.equal(sessions.use(s.id, ALICE), s, 'answered from the copy once (the refresh runs behind)')
    await until('the refresh finds it gone', () => ended.length === 1)
    t.same(ended, [[s.id, 'expired']])
    t.equal(await sessions.use(s.id, ALICE), undefined)
  })

  t.test('a failed background refresh changes nothing until the copy ages out of trust', async t => {
    const { sessions, link } = await one(t)
    const s = await sessions.create(ALICE, 'v', undefined)
    link.client.disconnect() // commands fail; the subscription stays
    t.equal(sessions.use(s.id, ALICE), s)
    await new Promise(resolve => setTimeout(resolve, 20))
    t.equal(sessions.use(s.id, ALICE), s, 'still the copy, and the next refresh is tried again')
  })

  t.test('the sweep keeps sessions with an open stream alive in Redis and forgets idle copies only', async t => {
    const { sessions, link } = await one(t, { idleTtlMs: 5000 })
    const streaming = await sessions.create(ALICE, 'v', undefined)
    const idle = await sessions.create(ALICE, 'v', undefined)
    const calling = await sessions.create(ALICE, 'v', undefined)
    calling.inflight = new Map()
    streaming.stream = {} as McpSession['stream']
    const key = `${link.prefix}session:${streaming.id}`
    await link.client.pexpire(key, 1000)
    sessions.sweep(Date.now() + 10)
    await new Promise(resolve => setTimeout(resolve, 50))
    t.ok(await link.client.pttl(key) > 4000, 'the streaming session got its TTL back')
    sessions.sweep(Date.now() + 6000)
    t.equal(sessions.get(idle.id), undefined, 'the idle copy is forgotten')
    t.equal(sessions.get(streaming.id), streaming, 'the streaming one kept')
    t.equal(sessions.get(calling.id), calling, 'and the one with calls in flight')
    streaming.stream = undefined
  })
})
