// The benchmark of issue 4: bare Fastify, the SDK reference integration and
// this server, side by side under the same load, then idle-session memory.
// `npm run bench`; settings: BENCH_DURATION (s per round, 5), BENCH_ROUNDS (3),
// BENCH_CONNECTIONS (50), BENCH_WARMUP (s, 1), BENCH_SESSIONS (10000),
// BENCH_PROFILE=1 (also profile this server), BENCH_PROFILE_DURATION (s, 10).
import { writeFileSync, readFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { createRequire } from 'node:module'
import { loadavg } from 'node:os'
import { ask, guardProcess, startChild, stopAll, stopChild } from './lib/children.js'
import {
  BENCH_DIR, LOG_LEVEL, MEMORY, SERVE, benchSettings, machine, referenceOptions, startFixtures, thisServerEnv
} from './lib/setup.js'
import {
  PROTOCOL_VERSION, echoCallMessage, expectResult, initializeMessage, mcpHeaders, openSession, post, toolsCallMessage, toolsListMessage
} from './lib/mcp-client.js'
import { freshClients, hammer } from './lib/load.js'
import { aggregate, markdown, median } from './lib/report.js'
import { startRedis } from './lib/redis.js'

const require = createRequire(import.meta.url)
const settings = benchSettings()
const startedAt = new Date()
const log = (...args) => console.error(`[${((Date.now() - startedAt) / 1000).toFixed(0).padStart(4)} s]`, ...args)

const SCENARIOS = [
  { name: 'session tools/list', mode: 'session', message: toolsListMessage },
  { name: 'session tools/call', mode: 'session', message: toolsCallMessage },
  { name: 'stateless tools/list', mode: 'stateless', message: toolsListMessage },
  { name: 'stateless tools/call', mode: 'stateless', message: toolsCallMessage },
  { name: 'fresh client: initialize + tools/call', mode: 'fresh' },
  // Issue 15: the tail, at 20 connections, for a trivial tool through the
  // auth and mcp plugins alone, and for the whole app's news tool answered from its cache.
  { name: 'tail: echo tools/call, plugins', mode: 'session', message: echoCallMessage, connections: 20, set: 'echo' },
  { name: 'tail: news tools/call from cache, app', mode: 'session', message: toolsCallMessage, connections: 20, set: 'tail' }
]

const measurements = SCENARIOS.length * 3 * (settings.rounds * settings.duration + settings.warmup)
guardProcess((measurements * 1.3 + 240 + (settings.profile ? settings.profileDuration + 60 : 0)) * 1000)

const targets = {}
const notes = []
let fixtures
let redis
/** Redis commands per request, per scenario, in the Redis mode (issue 9, point 8). */
const redisPerRequest = {}

/** One measurement of one scenario on one target, with its setup: a fresh session, a warm cache. */
async function measure (scenario, target, duration) {
  const { url } = target
  const token = fixtures.token
  let session
  let headers
  let message
  if (scenario.mode === 'session') {
    session = await openSession(url, token)
    headers = mcpHeaders(token, session)
  } else {
    headers = mcpHeaders(token, { protocolVersion: PROTOCOL_VERSION })
  }
  if (scenario.mode !== 'fresh') {
    message = scenario.message()
    // The answer must be a result (not a JSON-RPC error in a 200); for tools/call this also warms the cache.
    await expectResult(url, headers, message)
  }

  const hitsBefore = target.kind === 'app' ? (await ask(fixtures.child, 'hits')).upstream : undefined
  const connections = scenario.connections ?? settings.connections
  await ask(target.child, 'gcReset')
  const commandsBefore = target.redis ? await redis.commands() : undefined
  const serverCpu = await ask(target.child, 'cpu')
  const ownCpu = process.cpuUsage()
  const started = performance.now()
  const result = scenario.mode === 'fresh'
    ? await freshClients({ url, token, connections, duration })
    : await hammer({ url, headers, message, connections, duration })
  const elapsedUs = (performance.now() - started) * 1000
  const cpuShare = ({ user, system }) => 100 * (user + system) / elapsedUs
  result.serverCpu = cpuShare(diff(await ask(target.child, 'cpu'), serverCpu))
  result.loadCpu = cpuShare(process.cpuUsage(ownCpu))
  result.gc = await ask(target.child, 'gc')
  if (hitsBefore !== undefined) result.upstreamHits = (await ask(fixtures.child, 'hits')).upstream - hitsBefore
  // The second INFO counts itself: one command less.
  if (commandsBefore !== undefined) {
    const perRequest = (await redis.commands() - commandsBefore - 1) / Math.max(1, result.ok + result.non2xx)
    ;(redisPerRequest[scenario.name] ??= []).push(perRequest)
  }

  if (message !== undefined) await expectResult(url, headers, message)
  // Close it as a client would, so sessions do not pile up across measurements.
  if (session?.id !== undefined) await deleteSession(url, headers)
  return result
}

function diff (after, before) {
  return { user: after.user - before.user, system: after.system - before.system }
}

async function deleteSession (url, { 'content-type': _, ...headers }) {
  const res = await fetch(url, { method: 'DELETE', headers })
  await res.arrayBuffer()
}

async function startTargets () {
  const app = await startChild(SERVE, { name: 'this server', options: { kind: 'app', env: thisServerEnv(fixtures), logLevel: LOG_LEVEL } })
  targets.app = { kind: 'app', label: 'this server', child: app.child, url: app.ready.url }
  // Redis mode (issue 9): the same server with REDIS_URL, sessions and rate-limit counters in a local Redis.
  redis = await startRedis()
  const appRedis = await startChild(SERVE, { name: 'this server (Redis)', options: { kind: 'app', env: thisServerEnv(fixtures, { REDIS_URL: redis.url }), logLevel: LOG_LEVEL } })
  targets.appRedis = { kind: 'app', label: 'this server (Redis)', child: appRedis.child, url: appRedis.ready.url, redis: true }
  const appStateless = await startChild(SERVE, { name: 'this server (stateless)', options: { kind: 'app', env: thisServerEnv(fixtures, { MCP_STATELESS: 'true' }), logLevel: LOG_LEVEL } })
  targets.appStateless = { kind: 'app', label: 'this server', child: appStateless.child, url: appStateless.ready.url }

  // What this server answers becomes what the bare route and the reference answer: same tool, same bytes.
  const session = await openSession(targets.app.url, fixtures.token)
  const headers = mcpHeaders(fixtures.token, session)
  const list = await expectResult(targets.app.url, headers, toolsListMessage())
  const call = await expectResult(targets.app.url, headers, toolsCallMessage())
  const init = (await post(targets.app.url, mcpHeaders(fixtures.token), initializeMessage())).message.result
  const tool = list.tools.find(t => t.name === 'get_news_sentiment')
  if (tool === undefined) throw new Error('this server does not list get_news_sentiment')

  const bare = await startChild(SERVE, { name: 'bare', options: { kind: 'bare', logLevel: LOG_LEVEL, results: { initialize: init, 'tools/list': list, 'tools/call': call } } })
  targets.bare = { kind: 'bare', label: 'bare', child: bare.child, url: bare.ready.url }
  const ref = await startChild(SERVE, { name: 'reference', options: referenceOptions(fixtures, { stateless: false, tool, toolResult: call }) })
  targets.reference = { kind: 'reference', label: 'reference', child: ref.child, url: ref.ready.url }
  const refStateless = await startChild(SERVE, { name: 'reference (stateless)', options: referenceOptions(fixtures, { stateless: true, tool, toolResult: call }) })
  targets.referenceStateless = { kind: 'reference', label: 'reference', child: refStateless.child, url: refStateless.ready.url }

  // Issue 15: the plugins alone with a trivial tool, and a bare route sending the same bytes.
  const plugins = await startChild(SERVE, { name: 'plugins (echo)', options: { ...referenceOptions(fixtures), kind: 'plugins' } })
  targets.plugins = { kind: 'plugins', label: 'plugins', child: plugins.child, url: plugins.ready.url }
  const echoSession = await openSession(targets.plugins.url, fixtures.token)
  const echo = await expectResult(targets.plugins.url, mcpHeaders(fixtures.token, echoSession), echoCallMessage())
  const bareEcho = await startChild(SERVE, { name: 'bare (echo)', options: { kind: 'bare', logLevel: LOG_LEVEL, results: { 'tools/call': echo } } })
  targets.bareEcho = { kind: 'bare', label: 'bare', child: bareEcho.child, url: bareEcho.ready.url }
  return { tool, call }
}

function targetsOf (scenario) {
  if (scenario.set === 'echo') return [targets.bareEcho, targets.plugins]
  if (scenario.set === 'tail') return [targets.bare, targets.app]
  return scenario.mode === 'stateless'
    ? [targets.bare, targets.referenceStateless, targets.appStateless]
    : [targets.bare, targets.reference, targets.app, targets.appRedis]
}

async function sessionMemory () {
  const out = []
  const common = { sessions: settings.sessions, token: fixtures.token, logLevel: LOG_LEVEL }
  const runs = [
    { target: 'app', label: 'this server', options: { kind: 'app', env: thisServerEnv(fixtures, { MCP_MAX_SESSIONS: String(settings.sessions * 2), MCP_MAX_SESSIONS_PER_SUBJECT: String(settings.sessions * 2) }) } },
    { target: 'reference', label: 'reference (SDK transport + McpServer per session)', options: referenceOptions(fixtures, { stateless: false, tool: targets.tool, toolResult: targets.toolResult, maxSessions: settings.sessions * 2 }) }
  ]
  for (const run of runs) {
    log(`memory: ${run.label}, ${settings.sessions} sessions`)
    try {
      const { child, ready } = await startChild(MEMORY, {
        name: `memory (${run.label})`,
        execArgv: ['--expose-gc'],
        options: { ...common, ...run.options },
        timeoutMs: 180_000
      })
      await stopChild(child)
      out.push({ target: run.target, label: run.label, ...ready })
    } catch (err) {
      log(`memory: ${run.label} failed: ${err.message}`)
      out.push({ target: run.target, label: run.label, error: err.message })
    }
  }
  return out
}

async function main () {
  const m = machine()
  const loadStart = loadavg()
  log(`${m.nproc} × ${m.cpu}, Node ${m.node}; ${settings.rounds} rounds × ${settings.duration} s, ${settings.connections} connections`)
  fixtures = await startFixtures()
  const { tool, call } = await startTargets()
  targets.tool = tool
  targets.toolResult = call
  log('targets up:', Object.values(targets).filter(t => t.url !== undefined).map(t => `${t.child.benchName} ${t.url}`).join(', '))

  const rounds = {}
  for (const scenario of SCENARIOS) {
    rounds[scenario.name] = {}
    for (const target of targetsOf(scenario)) {
      log(`warm-up: ${scenario.name} on ${target.child.benchName}`)
      await measure(scenario, target, settings.warmup)
      rounds[scenario.name][target.label] = []
    }
  }
  for (let round = 0; round < settings.rounds; round++) {
    for (const scenario of SCENARIOS) {
      const list = targetsOf(scenario)
      // Rotate the order each round, so no target always runs right after the same other one.
      const order = list.map((_, i) => list[(i + round) % list.length])
      for (const target of order) {
        const result = await measure(scenario, target, settings.duration)
        rounds[scenario.name][target.label].push(result)
        log(`round ${round + 1}/${settings.rounds} ${scenario.name} | ${target.child.benchName}: ${Math.round(result.rps)} req/s, p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms, p99.9 ${result.p999.toFixed(2)} ms, non-2xx ${result.non2xx}, errors ${result.errors}, ` +
          `GC ${result.gc.scavenges} scavenges (longest ${result.gc.maxScavengeMs.toFixed(1)} ms), ${result.gc.markCompacts} mark-compacts, ` +
          `CPU server ${result.serverCpu.toFixed(0)} % load ${result.loadCpu.toFixed(0)} %` +
          (result.upstreamHits !== undefined ? `, upstream calls ${result.upstreamHits}` : ''))
      }
    }
  }

  const table = {}
  for (const [name, byTarget] of Object.entries(rounds)) {
    table[name] = {}
    for (const [label, results] of Object.entries(byTarget)) table[name][label] = aggregate(results)
  }
  for (const scenario of SCENARIOS.filter(s => s.name.includes('tools/call'))) {
    const r = table[scenario.name]['this server']
    if (r?.upstreamHits > 0) {
      notes.push(`${scenario.name}: this server called the fake Alpha Vantage ${r.upstreamHits.toLocaleString('en-US')} times for ${r.ok.toLocaleString('en-US')} successful answers ` +
        '(no response cache in the tool yet): its tools/call numbers include an upstream HTTP round trip and the parsing of the feed on every call.')
    }
  }
  notes.push('The reference answers with SSE (the SDK default, as in its examples); this server and bare answer with JSON.',
    'This server runs with its defaults (sessions capped at 100 per subject, the per-subject rate limiter on with its limit raised out of reach); ' +
    'the stateful reference closes its oldest session past 1,000, so the fresh-client run stays bounded.')

  const sessionCall = table['session tools/call']
  const redisRatio = sessionCall['this server (Redis)'].rps / sessionCall['this server'].rps
  const perCpuRatio = sessionCall['this server (Redis)'].perCpu / sessionCall['this server'].perCpu
  notes.push(`Redis mode (issue 9): session tools/call at ${(100 * redisRatio).toFixed(0)} % of the in-memory mode's req/s ` +
    `(${(100 * perCpuRatio).toFixed(0)} % per server CPU-s; goal ≥ 60 %: ${redisRatio >= 0.6 ? 'met' : '**not met**'}). ` +
    'Redis commands per request, as Redis counts them (each EVALSHA plus every command run inside its script; median over rounds): ' +
    Object.entries(redisPerRequest).map(([name, values]) => `${name} ${median(values).toFixed(2)}`).join(', ') +
    '. Redis runs on the same cores as everything else.')

  for (const t of Object.values(targets)) if (t.child !== undefined) await stopChild(t.child)
  await redis.stop()
  const memory = await sessionMemory()

  let profile
  if (settings.profile) {
    log('profiling this server under --cpu-prof')
    const { profileThisServer } = await import('./profile.js')
    const result = await profileThisServer({ fixtures, settings })
    profile = result.markdown
    notes.push(`CPU profile: bench/profiles/${basename(result.file)}`)
  }

  const report = markdown({
    machine: { ...m, loadStart, loadEnd: loadavg() },
    settings,
    versions: {
      autocannon: require('autocannon/package.json').version,
      sdk: JSON.parse(readFileSync(join(BENCH_DIR, '../node_modules/@modelcontextprotocol/sdk/package.json'), 'utf8')).version
    },
    scenarios: SCENARIOS.map(s => ({ name: s.name, targets: targetsOf(s) })),
    table,
    memory,
    profile,
    notes,
    startedAt: startedAt.toISOString().replace(/\.\d+Z$/, 'Z'),
    elapsedSec: (Date.now() - startedAt) / 1000
  })
  writeFileSync(join(BENCH_DIR, 'results.md'), report)
  console.log(report)
  log('written to bench/results.md')
}

try {
  await main()
} finally {
  await stopAll()
}
