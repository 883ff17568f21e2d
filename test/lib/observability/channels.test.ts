import t, { type Test } from 'tap'
import { AlphaVantageError, type NewsFeed } from '../../../lib/news/alpha-vantage.js'
import { MemoryResponseCache } from '../../../lib/news/cache.js'
import { NewsService } from '../../../lib/news/service.js'
import * as channels from '../../../lib/observability/channels.js'

/** Subscribes to a channel for the test's duration and returns what it received. */
function listen<M> (t: Test, channel: channels.TypedChannel<M>): M[] {
  const received: M[] = []
  const listener = (m: M): void => { received.push(m) }
  channel.subscribe(listener)
  t.teardown(() => { channel.unsubscribe(listener) })
  return received
}

const feed: NewsFeed = { articles: [], dropped: 0, bytes: 10 }

t.test('the news service tells cache, quota, upstream and circuit events', async t => {
  const cache = listen(t, channels.cacheChannel)
  const quota = listen(t, channels.quotaChannel)
  const upstream = listen(t, channels.upstreamCallChannel)
  const circuit = listen(t, channels.circuitChannel)
  const clock = { now: Date.UTC(2024, 4, 20, 12) }
  const answers: Array<NewsFeed | Error> = [feed, new AlphaVantageError('unavailable', 'down'), new TypeError('a bug'), feed]
  const service = new NewsService({
    client: { newsSentiment: async () => { const next = answers.shift() as NewsFeed | Error; if (next instanceof Error) throw next; return next } },
    cache: new MemoryResponseCache<NewsFeed>({ maxEntries: 10, maxBytes: 10_000, retentionMs: 86_400_000, now: () => clock.now }),
    ttlMs: 1000,
    dailyLimit: 10,
    retries: 0,
    retryBaseMs: 0,
    circuitThreshold: 1,
    circuitCooldownMs: 5000,
    now: () => clock.now
  })
  await service.query({ tickers: ['AAPL'] }) // miss, upstream ok
  await service.query({ tickers: ['AAPL'] }) // hit
  clock.now += 2000
  const stale = await service.query({ tickers: ['AAPL'] }) // miss, upstream unavailable → circuit opens, stale answer
  t.equal(stale.stale, true)
  await t.rejects(service.query({ tickers: ['MSFT'] }), /Alpha Vantage has been failing/, 'refused while the circuit is open')
  clock.now += 6000
  await t.rejects(service.query({ tickers: ['MSFT'] }), TypeError, 'a bug is not an upstream answer')
  await service.query({ tickers: ['MSFT'] }) // upstream ok → the circuit closes
  t.same(cache.map(m => m.result), ['miss', 'hit', 'miss', 'stale', 'miss', 'miss', 'miss'])
  t.same(upstream.map(m => m.outcome), ['ok', 'unavailable', 'bug', 'ok'])
  t.ok(upstream.every(m => m.durationMs >= 0))
  t.same(quota.map(m => [m.used, m.remaining, m.limit]), [[1, 9, 10], [2, 8, 10], [3, 7, 10], [4, 6, 10]])
  t.same(circuit.map(m => m.state), ['open', 'closed'])
})

t.test('MCP request messages carry only bounded method and tool names', async t => {
  const tools = { get: (name: string) => name === 'known' ? {} : undefined }
  const request = {}
  t.same(channels.mcpRequestMessage(request, { method: 'tools/call', params: { name: 'known' } }, { result: {} }, tools),
    { method: 'tools/call', tool: 'known', outcome: 'ok', errorCode: undefined, request })
  t.same(channels.mcpRequestMessage(request, { method: 'tools/call', params: { name: 'eyJhbGciOi' } }, { result: { isError: true } }, tools),
    { method: 'tools/call', tool: 'unknown', outcome: 'tool_error', errorCode: undefined, request })
  t.same(channels.mcpRequestMessage(request, { method: 'secret-looking-method' }, { error: { code: -32601 } }),
    { method: 'unknown', tool: undefined, outcome: 'error', errorCode: -32601, request })
  t.same(channels.mcpRequestMessage(request, { method: 'tools/call', params: { name: 42 } }, undefined),
    { method: 'tools/call', tool: undefined, outcome: 'ok', errorCode: undefined, request })
})

t.test('the Redis connection publishes its errors', async t => {
  const { SharedRedis } = await import('../../../plugins/redis.js')
  const received = listen(t, channels.redisChannel)
  const warnings: unknown[] = []
  const log = { info: () => {}, warn: (o: unknown) => warnings.push(o) } as never
  // Port 1 on loopback: nothing listens, the connection is refused at once.
  const redis = new SharedRedis({ url: 'redis://127.0.0.1:1', keyPrefix: 't:', connectTimeoutMs: 500, commandTimeoutMs: 500 }, log)
  t.teardown(async () => { await redis.close() })
  for (let i = 0; i < 100 && received.length === 0; i++) await new Promise(resolve => setTimeout(resolve, 50))
  t.ok(received.length > 0, 'an error event')
  t.same(received[0], { outcome: 'error' })
})
