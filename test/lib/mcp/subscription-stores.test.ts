// One suite against both subscription stores: in memory and in Redis.
import t, { type Test } from 'tap'
import {
  MemorySubscriptionStore, RedisSubscriptionStore, SubscriptionLimitError, MAX_SUBSCRIPTIONS_PER_SESSION, type SubscriptionStore
} from '../../../lib/mcp/subscriptions.js'
import { RedisServer, sharedRedis } from '../../helpers/redis-server.js'
import type { SharedRedis } from '../../../plugins/redis.js'

interface Made { store: SubscriptionStore, live: (id: string) => Promise<void> }
type Factory = (t: Test) => Promise<Made>

const memory: Factory = async () => ({ store: new MemorySubscriptionStore(), live: async () => {} })

let server: RedisServer
let n = 0
let link: SharedRedis
const redis: Factory = async t => {
  link = await sharedRedis(t, server, `subs${++n}:`)
  const store = new RedisSubscriptionStore(link, { ttlMs: 60_000 })
  // The session store's key for a live session (the store prunes ids without one).
  return { store, live: async id => { await link.client.set(`${link.prefix}session:${id}`, '1') } }
}

t.before(async () => { server = await RedisServer.start(t) })

for (const [kind, make] of [['memory', memory], ['redis', redis]] as const) {
  t.test(`${kind}: subscribe, unsubscribe and the subscribers of a URI`, async t => {
    const { store, live } = await make(t)
    await live('a')
    await live('b')
    await store.subscribe('a', 'news://sentiment/AAPL')
    await store.subscribe('a', 'news://sentiment/AAPL') // twice is once
    await store.subscribe('b', 'news://sentiment/AAPL')
    await store.subscribe('b', 'news://topics')
    t.same([...await store.subscribers('news://sentiment/AAPL')].sort(), ['a', 'b'])
    t.same(await store.subscribers('news://topics'), ['b'])
    t.same(await store.subscribers('news://nobody'), [])
    await store.unsubscribe('a', 'news://sentiment/AAPL')
    await store.unsubscribe('a', 'news://never-subscribed')
    await store.unsubscribe('zz', 'news://topics')
    t.same(await store.subscribers('news://sentiment/AAPL'), ['b'])
    await store.unsubscribe('b', 'news://sentiment/AAPL')
    t.same(await store.subscribers('news://sentiment/AAPL'), [])
  })

  t.test(`${kind}: a session's subscriptions end with it, but not when a replica shuts down`, async t => {
    const { store, live } = await make(t)
    await live('a')
    await live('b')
    await store.subscribe('a', 'u://1')
    await store.subscribe('a', 'u://2')
    await store.subscribe('b', 'u://1')
    store.sessionEnded('a', 'deleted')
    t.same(await store.subscribers('u://1'), ['b'])
    // Redis ends asynchronously: poll.
    let left: readonly string[] = ['a']
    for (let i = 0; i < 100 && left.length > 0; i++) {
      left = await store.subscribers('u://2')
      await new Promise(resolve => setTimeout(resolve, 10))
    }
    t.same(left, [])
    store.sessionEnded('nobody', 'expired')
    if (kind === 'redis') {
      store.sessionEnded('b', 'shutdown')
      await new Promise(resolve => setTimeout(resolve, 50))
      t.same(await store.subscribers('u://1'), ['b'], 'the session lives on in Redis after one replica stops')
    }
  })

  t.test(`${kind}: at most ${MAX_SUBSCRIPTIONS_PER_SESSION} subscriptions per session`, async t => {
    const { store, live } = await make(t)
    await live('a')
    for (let i = 0; i < MAX_SUBSCRIPTIONS_PER_SESSION; i++) await store.subscribe('a', `u://${i}`)
    await t.rejects((async () => { await store.subscribe('a', 'u://one-more') })(), SubscriptionLimitError)
    await store.subscribe('a', 'u://0') // already held: fine
    await store.unsubscribe('a', 'u://0')
    await store.subscribe('a', 'u://one-more')
    t.same(await store.subscribers('u://one-more'), ['a'])
  })
}

t.test('redis: a session that expired without a message is pruned at the next update', async t => {
  const { store, live } = await redis(t)
  await live('a')
  await store.subscribe('a', 'u://x')
  await store.subscribe('gone', 'u://x')
  t.same(await store.subscribers('u://x'), ['a'])
  t.equal(await link.client.sismember(`${link.prefix}subscribers:u://x`, 'gone'), 0)
  t.equal(await link.client.exists(`${link.prefix}subscriptions:gone`), 0)
  t.ok(await link.client.pttl(`${link.prefix}subscriptions:a`) > 0, "a session's own list has a TTL")
})

t.test('memory: the store keeps nothing for URIs nobody watches', async t => {
  const store = new MemorySubscriptionStore()
  store.subscribe('a', 'u://1')
  t.equal(store.size, 1)
  store.unsubscribe('a', 'u://1')
  t.equal(store.size, 0)
})
