// Production settings under load (issue 11), short: `npm run bench:production`.
//  1. The cost of observability on the hot path: session tools/call with
//     metrics off and on (METRICS_TOKEN), alternating, BENCH_ROUNDS rounds.
//  2. Overload: this server with and without its overload protection
//     (OVERLOAD_MAX_EVENT_LOOP_DELAY_MS) at rising connection counts:
//     throughput, latency, and how many requests got a fast 503.
// Settings: BENCH_DURATION (s, 5), BENCH_ROUNDS (3), BENCH_CONNECTIONS (50),
// OVERLOAD_LEVELS (connections, "50,500,2000"), OVERLOAD_DELAY_MS (100).
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadavg } from 'node:os'
import { guardProcess, startChild, stopAll, stopChild } from './lib/children.js'
import { BENCH_DIR, LOG_LEVEL, SERVE, benchSettings, machine, startFixtures, thisServerEnv } from './lib/setup.js'
import { expectResult, mcpHeaders, openSession, toolsCallMessage } from './lib/mcp-client.js'
import { hammer } from './lib/load.js'
import { median } from './lib/report.js'

const settings = benchSettings()
const levels = (process.env.OVERLOAD_LEVELS ?? '50,500,2000').split(',').map(Number)
const delayMs = process.env.OVERLOAD_DELAY_MS ?? '100'
const startedAt = Date.now()
const log = (...args) => console.error(`[${((Date.now() - startedAt) / 1000).toFixed(0).padStart(4)} s]`, ...args)
guardProcess((settings.rounds * 2 * settings.duration + levels.length * 2 * settings.duration + 240) * 1000)

async function startServer (fixtures, name, extra) {
  const { child, ready } = await startChild(SERVE, { name, options: { kind: 'app', env: thisServerEnv(fixtures, extra), logLevel: LOG_LEVEL } })
  // The boot itself blocks the loop: with protection on, the first samples may still refuse.
  let session
  for (let attempt = 0; session === undefined; attempt++) {
    try {
      session = await openSession(ready.url, fixtures.token)
    } catch (err) {
      if (attempt === 20 || !/HTTP 503/.test(err.message)) throw err
      await new Promise(resolve => setTimeout(resolve, 500))
    }
  }
  const headers = mcpHeaders(fixtures.token, session)
  await expectResult(ready.url, headers, toolsCallMessage()) // warms the cache
  return { child, url: ready.url, headers }
}

async function run (server, connections) {
  return await hammer({ url: server.url, headers: server.headers, message: toolsCallMessage(), connections, duration: settings.duration })
}

const fmt = (n) => Math.round(n).toLocaleString('en-US')

async function main () {
  const m = machine()
  const loadStart = loadavg()
  const fixtures = await startFixtures()
  const out = [`# Production settings under load\n\n${m.nproc} × ${m.cpu}, Node ${m.node}, ${new Date().toISOString().slice(0, 10)}; load average at start ${loadStart.map(l => l.toFixed(1)).join(' / ')}.\n`]

  // 1. Metrics off / on, alternating so that drift in the machine's load hits both.
  // Overload protection off here: this part measures the metrics' cost, not the machine's load.
  const off = await startServer(fixtures, 'metrics off', { OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0' })
  const on = await startServer(fixtures, 'metrics on', { OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0', METRICS_TOKEN: 'bench-metrics-token-0123456789' })
  const results = { off: [], on: [] }
  await run(off, settings.connections)
  await run(on, settings.connections)
  for (let round = 0; round < settings.rounds; round++) {
    for (const [label, server] of round % 2 === 0 ? [['off', off], ['on', on]] : [['on', on], ['off', off]]) {
      const r = await run(server, settings.connections)
      results[label].push(r)
      log(`metrics ${label}, round ${round + 1}: ${fmt(r.rps)} req/s, p99 ${r.p99} ms, non-2xx ${r.non2xx}`)
    }
  }
  const rpsOff = median(results.off.map(r => r.rps))
  const rpsOn = median(results.on.map(r => r.rps))
  await stopChild(off.child)
  await stopChild(on.child)
  out.push('## Metrics on the hot path (session tools/call)\n',
    `${settings.rounds} rounds × ${settings.duration} s, ${settings.connections} connections, medians.\n`,
    '| metrics | req/s | p50 ms | p99 ms |', '|---|---:|---:|---:|',
    `| off | ${fmt(rpsOff)} | ${median(results.off.map(r => r.p50))} | ${median(results.off.map(r => r.p99))} |`,
    `| on (METRICS_TOKEN) | ${fmt(rpsOn)} | ${median(results.on.map(r => r.p50))} | ${median(results.on.map(r => r.p99))} |`,
    `\nWith metrics on: **${(100 * rpsOn / rpsOff).toFixed(1)} %** of the throughput with metrics off.\n`)

  // 2. Overload, protected and not.
  out.push('## Overload\n', `tools/call in one session, ${settings.duration} s per level; protection: OVERLOAD_MAX_EVENT_LOOP_DELAY_MS=${delayMs} (0 = off).\n`,
    '| protection | connections | req/s (all answers) | 2xx/s | 503 | errors | p50 ms | p99 ms |', '|---|---:|---:|---:|---:|---:|---:|---:|')
  for (const [label, threshold] of [['off', '0'], ['on', delayMs]]) {
    const server = await startServer(fixtures, `overload ${label}`, { OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: threshold, OVERLOAD_RETRY_AFTER_SEC: '1' })
    for (const connections of levels) {
      const r = await run(server, connections)
      log(`overload protection ${label}, ${connections} connections: ${fmt(r.rps)} req/s, 2xx ${r.ok}, non-2xx ${r.non2xx}, errors ${r.errors}, p50 ${r.p50} ms, p99 ${r.p99} ms`)
      out.push(`| ${label} | ${connections} | ${fmt(r.rps)} | ${fmt(r.ok / settings.duration)} | ${fmt(r.non2xx)} | ${r.errors} | ${r.p50} | ${r.p99} |`)
    }
    await stopChild(server.child)
  }
  out.push(`\nLoad average at the end ${loadavg().map(l => l.toFixed(1)).join(' / ')}; ${((Date.now() - startedAt) / 1000).toFixed(0)} s in all.\n`)
  const report = out.join('\n')
  writeFileSync(join(BENCH_DIR, 'production-results.md'), report)
  console.log(report)
}

try {
  await main()
} finally {
  await stopAll()
}
