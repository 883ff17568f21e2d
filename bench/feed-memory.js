// How big a 1,000-article NEWS_SENTIMENT answer is, on the wire and in the
// cache: builds one from a sample response (its articles repeated with
// distinct titles, URLs and times), serves it on 127.0.0.1, fetches it with
// the real client and holds it in the real in-memory cache.
//
//   npm run build && node --expose-gc bench/feed-memory.js [sample.json] [feeds]
import { createServer } from 'node:http'
import { readFileSync } from 'node:fs'
import { AlphaVantageClient } from '../dist/lib/news/alpha-vantage.js'
import { MemoryResponseCache } from '../dist/lib/news/cache.js'

const samplePath = process.argv[2] ?? new URL('../test/fixtures/news-aapl.json', import.meta.url)
const feeds = Number(process.argv[3] ?? 12)
const sample = JSON.parse(readFileSync(samplePath, 'utf8')).feed.filter(a => typeof a.title === 'string' && a.title !== '')
if (typeof global.gc !== 'function') throw new Error('run with node --expose-gc')

function body (n, salt) {
  const feed = Array.from({ length: n }, (_, i) => {
    const a = sample[i % sample.length]
    const minute = String(i % 60).padStart(2, '0')
    return { ...a, title: `${a.title} #${salt}-${i}`, url: `${a.url}?v=${salt}-${i}`, time_published: `202405${String(1 + (i % 28)).padStart(2, '0')}T12${minute}00` }
  })
  // Alpha Vantage pretty-prints its JSON (4 spaces).
  return JSON.stringify({ items: String(n), sentiment_score_definition: '', relevance_score_definition: '', feed }, null, 4)
}

let salt = 0
// The first two answers are made before the clock starts: the timing is the client's (transfer and parse).
const ready = [body(50, 'a'), body(1000, 'b')]
const server = createServer((req, res) => {
  const n = Number(new URL(req.url, 'http://x').searchParams.get('limit') ?? 50)
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(ready.shift() ?? body(n, salt++))
})
await new Promise(resolve => server.listen(0, '127.0.0.1', resolve))
const client = new AlphaVantageClient({ baseUrl: `http://127.0.0.1:${server.address().port}/query`, apiKey: 'x', timeoutMs: 10_000, maxConnections: 1 })

for (const limit of [50, 1000]) {
  const started = performance.now()
  const feed = await client.newsSentiment({ tickers: ['AAPL'], limit })
  console.log(`limit ${limit}: ${feed.articles.length} articles, body ${(feed.bytes / 1024).toFixed(0)} KiB, fetch + parse ${(performance.now() - started).toFixed(0)} ms`)
}

const cache = new MemoryResponseCache({ maxEntries: 500, maxBytes: 32 * 1024 * 1024, retentionMs: 86_400_000 })
global.gc()
const before = process.memoryUsage().heapUsed
let counted = 0
for (let i = 0; i < feeds; i++) {
  const feed = await client.newsSentiment({ tickers: ['AAPL'], limit: 1000 })
  counted += feed.bytes
  await cache.set(`k${i}`, { value: feed, storedAt: Date.now(), bytes: feed.bytes })
}
global.gc()
const held = process.memoryUsage().heapUsed - before
console.log(`${feeds} feeds of 1000 articles offered to the cache (32 MiB bound): ${cache.size} kept, ${(cache.bytes / 1048576).toFixed(1)} MiB counted, ` +
  `heap +${(held / 1048576).toFixed(1)} MiB (${(held / cache.size / 1048576).toFixed(2)} MiB per kept feed, ${(held / cache.bytes).toFixed(2)} × its body bytes); ${(counted / feeds / 1048576).toFixed(2)} MiB body per feed`)
await client.close()
server.close()
