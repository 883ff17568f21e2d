import t from 'tap'
import Fastify from 'fastify'
import overload from '../../plugins/overload.js'
import { overloadChannel } from '../../lib/observability/channels.js'
import { buildApp, MCP_HEADERS } from '../helpers/build-app.js'

const sleep = async (ms: number): Promise<void> => await new Promise(resolve => setTimeout(resolve, ms))

t.test('a blocked event loop: 503 with Retry-After at once, liveness still answers, recovery after', async t => {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(overload, { maxEventLoopDelayMs: 150, retryAfterSec: 7, sampleIntervalMs: 200 })
  app.get('/work', async () => ({ ok: true }))
  app.get('/health', async () => ({ status: 'ok' }))
  await app.ready()
  t.equal((await app.inject({ url: '/work' })).statusCode, 200, 'served while healthy')

  // Block the loop (a CPU-bound burst), then let one sample see it.
  // The overdue sampling timer fires right after the burst; the next one is 200 ms later.
  const until = Date.now() + 600
  while (Date.now() < until) { /* busy */ }
  await sleep(5)
  const refused = await app.inject({ url: '/work' })
  t.equal(refused.statusCode, 503)
  t.equal(refused.headers['retry-after'], '7')
  t.same(refused.json().error.code, -32000, 'a JSON-RPC error body MCP clients can read')
  t.match(refused.json().error.message, /overloaded \(eventLoopDelay\); retry in 7 s/)
  t.equal((await app.inject({ url: '/health' })).statusCode, 200, 'liveness is exempt: a busy process is not a dead one')

  // A calm loop: the next samples clear the flag (on a loaded machine calm may take a few samples).
  let status = 503
  for (let i = 0; i < 40 && status === 503; i++) {
    await sleep(250)
    status = (await app.inject({ url: '/work' })).statusCode
  }
  t.equal(status, 200, 'served again once the loop is calm')
})

t.test('the app wires thresholds from the environment (memory)', async t => {
  const ctx = await buildApp(t, { OVERLOAD_MAX_HEAP_USED_BYTES: '1', OVERLOAD_RETRY_AFTER_SEC: '3' })
  // under-pressure samples memory every second.
  await sleep(1100)
  const res = await ctx.app.inject({ method: 'POST', url: '/mcp', headers: { ...MCP_HEADERS, authorization: `Bearer ${ctx.token}` }, payload: { jsonrpc: '2.0', id: 1, method: 'ping' } })
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '3')
  t.match(res.json().error.message, /heapUsedBytes/)
  t.equal((await ctx.app.inject({ url: '/health' })).statusCode, 200)
  await ctx.app.inject({ url: '/ready' })
  t.equal(ctx.logs.filter(l => l.includes('"overload":"heapUsedBytes"') && l.includes('"level":40')).length, 1, 'one warning per Retry-After period, not one per refusal')
})

t.test('defaults, and an unmatched route under pressure', async t => {
  const defaults = Fastify()
  await defaults.register(overload, {})
  await defaults.ready()
  t.equal((await defaults.inject({ url: '/nothing' })).statusCode, 404, 'defaults: healthy machine, served')
  await defaults.close()

  const app = Fastify()
  t.teardown(async () => { await app.close() })
  await app.register(overload, { maxHeapUsedBytes: 1, sampleIntervalMs: 20 })
  await app.ready()
  await sleep(60)
  const reasons: string[] = []
  const listener = (m: { reason: string }): void => { reasons.push(m.reason) }
  overloadChannel.subscribe(listener)
  t.teardown(() => { overloadChannel.unsubscribe(listener) })
  t.equal((await app.inject({ url: '/nothing' })).statusCode, 503, 'refused like any route')
  t.same(reasons, ['heapUsedBytes'], 'and told on the overload channel')
})
