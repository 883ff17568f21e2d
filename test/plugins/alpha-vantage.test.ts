import t from 'tap'
import Fastify from 'fastify'
import alphaVantage from '../../plugins/alpha-vantage.js'
import type { NewsFeed } from '../../lib/news/alpha-vantage.js'
import type { CacheEntry, ResponseCache } from '../../lib/news/cache.js'
import { FakeAlphaVantage } from '../helpers/fake-alpha-vantage.js'

t.test('refuses to start without an API key, naming the plugin', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(alphaVantage, { baseUrl: 'http://127.0.0.1:1/query', apiKey: '', timeoutMs: 1000, maxConnections: 1 })
  await t.rejects(async () => await app.ready(), { message: 'alpha-vantage: "apiKey" is required' })
})

t.test('defaults, the demo-key warning, a shared cache in place of memory, the pool closed with the app', async t => {
  const upstream = await FakeAlphaVantage.start()
  t.teardown(() => upstream.close())
  const store = new Map<string, CacheEntry<NewsFeed>>()
  const cache: ResponseCache<NewsFeed> = {
    retentionMs: 1000,
    get: async key => store.get(key),
    set: async (key, entry) => { store.set(key, entry) }
  }
  const logs: string[] = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { logs.push(line) } } } })
  await app.register(alphaVantage, { baseUrl: upstream.url, apiKey: 'demo', timeoutMs: 1000, maxConnections: 1, usingDemoKey: true, cache })
  await app.ready()
  t.match(JSON.parse(logs[0]!), { level: 40, msg: /using Alpha Vantage's public "demo" key/ })
  const answer = await app.news.query({ tickers: ['AAPL'] })
  t.equal(store.size, 1, 'the answer went to the given cache')
  t.match(answer.quota, { limit: 25, used: 1 }, 'the free tier\'s 25 a day by default')
  t.equal((await app.news.query({ tickers: ['AAPL'] })).cached, true, 'fresh for the default five minutes')
  t.equal(app.alphaVantage.calls, 1)
  upstream.mode = 'http-503'
  await t.rejects(app.news.query({ tickers: ['MSFT'] }), { name: 'AlphaVantageError', kind: 'unavailable' })
  t.equal(upstream.hits.length, 1 + 3, 'two retries by default')
  await app.close()
  await t.rejects(app.alphaVantage.newsSentiment({}), 'the pool is closed')
})

t.test('the in-memory cache by default, no warning with a real key', async t => {
  const upstream = await FakeAlphaVantage.start()
  t.teardown(() => upstream.close())
  const logs: string[] = []
  const app = Fastify({ logger: { level: 'warn', stream: { write: (line: string) => { logs.push(line) } } } })
  t.teardown(() => app.close())
  await app.register(alphaVantage, { baseUrl: upstream.url, apiKey: 'KEY', timeoutMs: 1000, maxConnections: 1, cacheTtlMs: 0 })
  await app.ready()
  t.same(logs, [])
  await app.news.query({ tickers: ['AAPL'] })
  upstream.mode = 'information-premium'
  const stale = await app.news.query({ tickers: ['AAPL'] })
  t.equal(stale.stale, true, 'kept past its (zero) TTL for the default stale window')
})
