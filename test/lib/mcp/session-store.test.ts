import t from 'tap'
import type { ServerResponse } from 'node:http'
import { MemorySessionStore as SessionStore, SessionLimitError, type McpSession, type SessionEndReason } from '../../../lib/mcp/session-store.js'

function store (opts: { idleTtlMs?: number, maxSessions?: number, maxSessionsPerSubject?: number } = {}): { sessions: SessionStore, ended: Array<[string, SessionEndReason]> } {
  const ended: Array<[string, SessionEndReason]> = []
  const sessions = new SessionStore({
    idleTtlMs: opts.idleTtlMs ?? 1000,
    maxSessions: opts.maxSessions ?? 100,
    maxSessionsPerSubject: opts.maxSessionsPerSubject ?? 10,
    onEnd: (session, reason) => { ended.push([session.id, reason]) }
  })
  t.teardown(() => sessions.close())
  return { sessions, ended }
}

const T0 = 1_000_000

t.test('create: a fresh session bound to its subject', async t => {
  const { sessions } = store()
  const s = sessions.create('alice', '2025-06-18', { name: 'c', version: '1' }, 0, T0)
  t.match(s, { subject: 'alice', protocolVersion: '2025-06-18', clientInfo: { name: 'c' }, createdAt: T0, lastSeen: T0, stream: undefined, inflight: undefined })
  // 24 random bytes, base64url: 32 visible ASCII characters (transports "Session Management").
  t.match(s.id, /^[A-Za-z0-9_-]{32}$/)
  t.equal(sessions.size, 1)
  t.equal(sessions.countFor('alice'), 1)
  t.equal(sessions.countFor('bob'), 0)
  t.equal(sessions.get(s.id), s)
  t.same([...sessions.values()], [s])
})

t.test('touch refreshes a live session and expires an idle one', async t => {
  const { sessions, ended } = store({ idleTtlMs: 1000 })
  const s = sessions.create('alice', '2025-06-18', undefined, 0, T0)
  t.equal(sessions.touch(s.id, T0 + 1000), s, 'exactly at the TTL it is alive')
  t.equal(s.lastSeen, T0 + 1000)
  t.equal(sessions.touch(s.id, T0 + 2001), undefined, 'past the TTL since the last use it is gone')
  t.same(ended, [[s.id, 'expired']])
  t.equal(sessions.countFor('alice'), 0)
  t.equal(sessions.touch('unknown'), undefined)
})

t.test('a session holding an open stream is not idle', async t => {
  const { sessions } = store({ idleTtlMs: 1000 })
  const s = sessions.create('alice', '2025-06-18', undefined, 0, T0)
  s.stream = {} as ServerResponse
  t.equal(sessions.touch(s.id, T0 + 5000), s)
  t.equal(sessions.sweep(T0 + 10_000), 0)
  s.stream = undefined
  t.equal(sessions.sweep(T0 + 20_000), 1)
  t.equal(sessions.size, 0)
})

t.test('sweep ends only the idle sessions', async t => {
  const { sessions, ended } = store({ idleTtlMs: 1000 })
  const old = sessions.create('alice', 'v', undefined, 0, T0)
  const recent = sessions.create('alice', 'v', undefined, 0, T0 + 900)
  t.equal(sessions.sweep(T0 + 1500), 1)
  t.same(ended, [[old.id, 'expired']])
  t.equal(sessions.get(recent.id), recent)
})

t.test('the sweeper runs on its own', async t => {
  // Capture the interval rather than wait a second for it.
  const realSetInterval = globalThis.setInterval
  let tick: (() => void) | undefined
  let every: number | undefined
  globalThis.setInterval = ((fn: () => void, ms: number) => { tick = fn; every = ms; return realSetInterval(() => {}, 1e9) }) as typeof setInterval
  let sessions: SessionStore
  try {
    sessions = new SessionStore({ idleTtlMs: 20, maxSessions: 10, maxSessionsPerSubject: 10 })
  } finally {
    globalThis.setInterval = realSetInterval
  }
  t.teardown(() => sessions.close())
  t.equal(every, 1000, 'at most once a second')
  sessions.create('alice', 'v', undefined, 0, Date.now() - 100)
  tick?.()
  t.equal(sessions.size, 0)
})

t.test("a subject at its cap loses its own oldest session, not another subject's", async t => {
  const { sessions, ended } = store({ maxSessionsPerSubject: 2 })
  const bob = sessions.create('bob', 'v', undefined)
  const a1 = sessions.create('alice', 'v', undefined)
  const a2 = sessions.create('alice', 'v', undefined)
  const a3 = sessions.create('alice', 'v', undefined)
  t.same(ended, [[a1.id, 'evicted']])
  t.equal(sessions.get(a1.id), undefined)
  t.same([sessions.get(a2.id), sessions.get(a3.id), sessions.get(bob.id)], [a2, a3, bob])
  t.equal(sessions.countFor('alice'), 2)
})

t.test('the session evicted at the cap is the one used longest ago, not the one opened first', async t => {
  const { sessions, ended } = store({ maxSessionsPerSubject: 2 })
  const busy = sessions.create('alice', 'v', undefined, 0, T0)
  const idle = sessions.create('alice', 'v', undefined, 0, T0 + 10)
  sessions.touch(busy.id, T0 + 20) // the first session is the one in use
  sessions.create('alice', 'v', undefined, 0, T0 + 30)
  t.same(ended, [[idle.id, 'evicted']])
  t.equal(sessions.get(busy.id), busy, 'the session in use survives')
})

t.test('a full server sweeps, then refuses', async t => {
  const { sessions } = store({ idleTtlMs: 1000, maxSessions: 2 })
  sessions.create('a', 'v', undefined, 0, T0)
  sessions.create('b', 'v', undefined, 0, T0 + 500)
  t.throws(() => sessions.create('c', 'v', undefined, 0, T0 + 900), SessionLimitError)
  t.throws(() => sessions.create('c', 'v', undefined, 0, T0 + 900), { name: 'SessionLimitError', message: /retry later/ })
  // Once one has idled out, the sweep makes room.
  const c = sessions.create('c', 'v', undefined, 0, T0 + 1200)
  t.equal(sessions.size, 2)
  t.equal(sessions.countFor('a'), 0)
  t.equal(sessions.get(c.id), c)
})

t.test('end aborts the calls in flight and reports the reason once', async t => {
  const { sessions, ended } = store()
  const s: McpSession = sessions.create('alice', 'v', undefined)
  const call = new AbortController()
  s.inflight = new Map([[1, call]])
  t.equal(sessions.end(s.id, 'deleted'), true)
  t.equal(call.signal.aborted, true)
  t.equal(sessions.end(s.id, 'deleted'), false, 'a second end is a no-op')
  t.same(ended, [[s.id, 'deleted']])
})

t.test('close ends every session with reason shutdown', async t => {
  const ended: SessionEndReason[] = []
  const sessions = new SessionStore({ idleTtlMs: 1000, maxSessions: 10, maxSessionsPerSubject: 10, onEnd: (_s, reason) => { ended.push(reason) } })
  sessions.create('a', 'v', undefined)
  sessions.create('b', 'v', undefined)
  sessions.close()
  t.same(ended, ['shutdown', 'shutdown'])
  t.equal(sessions.size, 0)
  // Without onEnd, ending is silent.
  const quiet = new SessionStore({ idleTtlMs: 1000, maxSessions: 10, maxSessionsPerSubject: 10 })
  const q = quiet.create('a', 'v', undefined)
  t.equal(quiet.end(q.id, 'deleted'), true)
  quiet.close()
})
