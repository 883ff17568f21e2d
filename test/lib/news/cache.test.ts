import t from 'tap'
import { MemoryResponseCache } from '../../../lib/news/cache.js'

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
