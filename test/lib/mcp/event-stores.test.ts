// One suite for both event stores (MCP transports "Resumability and Redelivery").
import t, { type Test } from 'tap'
import { MemoryEventStore, eventId, parseEventId, type EventStore } from '../../../lib/mcp/event-store.js'
import { RedisEventStore } from '../../../lib/mcp/redis-event-store.js'
import { RedisServer, sharedRedis, until } from '../../helpers/redis-server.js'

let server: RedisServer
let n = 0
t.before(async () => { server = await RedisServer.start(t) })

type Factory = (t: Test) => Promise<EventStore>
const memory: Factory = async (t) => {
  const store = new MemoryEventStore({ maxEventsPerStream: 3, maxStreamsPerSession: 2 })
  t.teardown(() => store.close())
  return store
}
const redis: Factory = async (t) => {
  const link = await sharedRedis(t, server, `events${++n}:`)
  const store = new RedisEventStore(link, { ttlMs: 60_000, maxEventsPerStream: 3, maxStreamsPerSession: 2, onError: () => {} })
  t.teardown(() => store.close())
  await new Promise(resolve => setTimeout(resolve, 50)) // the subscription is acknowledged
  return store
}
const event = (seq: number, final = false): { seq: number, data: string, final: boolean } => ({ seq, data: `{"n":${seq}}`, final })

t.test('event ids name their stream and their place in it', async t => {
  t.equal(eventId('abc_-1', 7), 'abc_-1-7')
  t.same(parseEventId('abc_-1-7'), { streamId: 'abc_-1', seq: 7 })
  for (const bad of ['', '7', 'abc', 'a b-1', 'abc-', 'abc-1e3', `${'x'.repeat(33)}-1`]) t.equal(parseEventId(bad), undefined, bad)
})

for (const [name, make] of [['MemoryEventStore', memory], ['RedisEventStore', redis]] as Array<[string, Factory]>) {
  t.test(name, async t => {
    t.test('replay gives the events of one stream after the given one, bounded to the newest', async t => {
      const store = await make(t)
      for (let i = 1; i <= 4; i++) store.append('s1', 'A', event(i, i === 4))
      store.append('s1', 'B', event(1))
      store.append('s2', 'A', event(9))
      await new Promise(resolve => setTimeout(resolve, 50))
      t.same(await store.replay('s1', 'A', 2), [event(3), event(4, true)])
      t.same(await store.replay('s1', 'A', 0), [event(2), event(3), event(4, true)], 'the oldest went past the bound')
      t.same(await store.replay('s1', 'B', 0), [event(1)])
      t.same(await store.replay('s1', 'C', 0), [], 'an unknown stream has nothing')
    })

    t.test('follow is told of every later event of that stream, and records the resume', async t => {
      const store = await make(t)
      t.equal(await store.resumed('s1', 'A'), false)
      let told = 0
      const stop = store.follow('s1', 'A', () => { told++ })
      const other = store.follow('s1', 'A', () => {})
      store.append('s1', 'A', event(1))
      store.append('s1', 'B', event(1))
      await until('told', () => told === 1)
      t.equal(await store.resumed('s1', 'A'), true)
      t.equal(await store.resumed('s1', 'B'), false)
      t.equal(await store.resumed('s1', 'Z'), false, 'an unknown stream of a known session')
      stop()
      other()
      store.append('s1', 'A', event(2))
      await new Promise(resolve => setTimeout(resolve, 50))
      t.equal(told, 1, 'not after it stopped')
    })
  })
}

t.test('MemoryEventStore keeps a bounded number of streams per session and forgets a session', async t => {
  const store = await memory(t)
  for (const stream of ['A', 'B', 'C']) store.append('s1', stream, event(1))
  t.same(await store.replay('s1', 'A', 0), [], 'the oldest stream went')
  t.same(await store.replay('s1', 'C', 0), [event(1)])
  store.endSession('s1')
  t.same(await store.replay('s1', 'C', 0), [])
})

t.test('RedisEventStore: a failed write is reported, not thrown; streams expire', async t => {
  const link = await sharedRedis(t, server, `events${++n}:`)
  const errors: string[] = []
  const store = new RedisEventStore(link, { ttlMs: 200, onError: err => { errors.push(err.message) } })
  t.teardown(() => store.close())
  store.append('s1', 'A', event(1))
  await new Promise(resolve => setTimeout(resolve, 50))
  t.ok(await link.client.pttl(`${link.prefix}events:s1:A`) > 0, 'the stream key carries a TTL')
  store.endSession()
  await new Promise(resolve => setTimeout(resolve, 300))
  t.same(await store.replay('s1', 'A', 0), [], 'gone after its TTL')
  link.client.disconnect()
  store.append('s1', 'A', event(2))
  store.follow('s1', 'A', () => {})
  await until('both failures reported', () => errors.length === 2)
  await t.rejects(store.replay('s1', 'A', 0), 'a replay that cannot be answered rejects')
})
