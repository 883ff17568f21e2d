// Issue 15: what one request leaves to the garbage collector, per server. A
// fixed number of identical requests (not a duration) on 20 keep-alive
// connections, each server under `node --trace-gc-nvp`, whose line per
// collection says how many bytes it allocated and promoted to the old
// generation. These are counts, not times: unlike the latencies of
// `npm run bench`, allocation does not depend on what else runs on the
// machine, and promotion only a little (a request alive across two
// scavenges is promoted), so they show a regression even on a busy one.
//
// `npm run bench:gc`; settings: GC_CALLS (20000), GC_CONNECTIONS (20).
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Pool } from 'undici'
import { guardProcess, startChild, stopAll, stopChild } from './lib/children.js'
import { BENCH_DIR, LOG_LEVEL, SERVE, machine, referenceOptions, startFixtures, thisServerEnv } from './lib/setup.js'
import { echoCallMessage, expectResult, mcpHeaders, openSession, toolsCallMessage } from './lib/mcp-client.js'

const calls = Number(process.env.GC_CALLS ?? 20_000)
const connections = Number(process.env.GC_CONNECTIONS ?? 20)
const WARMUP = 4000
guardProcess(10 * 60_000)

/** A server under --trace-gc-nvp, whose collections are summed while `counting`. */
async function startCounted (name, options) {
  const { child, ready } = await startChild(SERVE, { name, options, execArgv: ['--trace-gc-nvp'], stdout: 'pipe' })
  const gc = { counting: false, allocated: 0, promoted: 0, scavenges: 0, markCompacts: 0 }
  let pending = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk) => {
    pending += chunk
    let end
    while ((end = pending.indexOf('\n')) !== -1) {
      const line = pending.slice(0, end)
      pending = pending.slice(end + 1)
      if (!gc.counting) continue
      const kind = /\bgc=(\w+)/.exec(line)?.[1]
      if (kind === undefined) continue
      if (kind === 's') gc.scavenges++
      else gc.markCompacts++
      gc.allocated += Number(/\ballocated=(\d+)/.exec(line)?.[1] ?? 0)
      gc.promoted += Number(/\bpromoted=(\d+)/.exec(line)?.[1] ?? 0)
    }
  })
  return { child, url: ready.url, gc }
}

/** `count` POSTs of `body`, `connections` at a time, each checked for a 200. */
async function send (url, headers, body, count) {
  const { origin, pathname } = new URL(url)
  const pool = new Pool(origin, { connections, pipelining: 1 })
  let left = count
  try {
    await Promise.all(Array.from({ length: connections }, async () => {
      while (left-- > 0) {
        const res = await pool.request({ path: pathname, method: 'POST', headers, body })
        await res.body.text()
        if (res.statusCode !== 200) throw new Error(`${url}: status ${res.statusCode}`)
      }
    }))
  } finally {
    await pool.close()
  }
}

async function measure (target, headers, body) {
  await send(target.url, headers, body, WARMUP)
  await new Promise(resolve => setTimeout(resolve, 300))
  target.gc.counting = true
  await send(target.url, headers, body, calls)
  // The last collections' lines arrive after the last response.
  await new Promise(resolve => setTimeout(resolve, 500))
  target.gc.counting = false
  await stopChild(target.child)
  return { ...target.gc }
}

const fixtures = await startFixtures()
const rows = []
try {
  // The app's news tool from its cache, and a bare route sending the same bytes.
  const app = await startCounted('this server', { kind: 'app', env: thisServerEnv(fixtures), logLevel: LOG_LEVEL })
  const appHeaders = mcpHeaders(fixtures.token, await openSession(app.url, fixtures.token))
  const newsCall = JSON.stringify(toolsCallMessage())
  const newsResult = await expectResult(app.url, appHeaders, toolsCallMessage())
  rows.push({ scenario: 'news tools/call from cache', server: 'this server (dist/app.js)', ...await measure(app, appHeaders, newsCall) })
  const bare = await startCounted('bare', { kind: 'bare', logLevel: LOG_LEVEL, results: { 'tools/call': newsResult } })
  rows.push({ scenario: 'news tools/call from cache', server: 'bare route, same bytes', ...await measure(bare, mcpHeaders(fixtures.token), newsCall) })

  // The auth and mcp plugins alone with a trivial tool, and a bare route sending the same bytes.
  const plugins = await startCounted('plugins', { ...referenceOptions(fixtures), kind: 'plugins' })
  const pluginHeaders = mcpHeaders(fixtures.token, await openSession(plugins.url, fixtures.token))
  const echoCall = JSON.stringify(echoCallMessage())
  const echoResult = await expectResult(plugins.url, pluginHeaders, echoCallMessage())
  rows.push({ scenario: 'echo tools/call', server: 'auth + mcp plugins', ...await measure(plugins, pluginHeaders, echoCall) })
  const bareEcho = await startCounted('bare (echo)', { kind: 'bare', logLevel: LOG_LEVEL, results: { 'tools/call': echoResult } })
  rows.push({ scenario: 'echo tools/call', server: 'bare route, same bytes', ...await measure(bareEcho, mcpHeaders(fixtures.token), echoCall) })
} finally {
  await stopAll()
}

const m = machine()
const perCall = (bytes) => bytes / calls
const lines = [
  '## What one request leaves to the garbage collector (issue 15)', '',
  `\`npm run bench:gc\`, ${new Date().toISOString()}: ${calls.toLocaleString('en')} identical calls after ${WARMUP.toLocaleString('en')} to warm up, ` +
  `${connections} connections, each server alone in a process under \`node --trace-gc-nvp\` (${m.nproc} × ${m.cpu}, Node ${m.node}). ` +
  'These are counts, not times: allocation does not depend on the load of the machine, promotion only a little. ' +
  'Bytes promoted are young objects that survived two scavenges and moved to the old generation, where only a mark-compact frees them; ' +
  'a request that is over should promote nothing.', '',
  '| scenario | server | allocated per call | promoted per call | scavenges per 10,000 calls | mark-compacts |',
  '| --- | --- | ---: | ---: | ---: | ---: |',
  ...rows.map(r => `| ${r.scenario} | ${r.server} | ${(perCall(r.allocated) / 1024).toFixed(1)} KB | ${Math.round(perCall(r.promoted))} B | ${(r.scavenges * 10_000 / calls).toFixed(1)} | ${r.markCompacts} |`),
  ''
]
const report = lines.join('\n')
writeFileSync(join(BENCH_DIR, 'gc-results.md'), report)
console.log(report)
process.exit(0)
