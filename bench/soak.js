// The soak of issue 5 (point 6): this server under minutes of sustained,
// mixed, authenticated load, watching for errors, throughput drift, memory
// growth and sessions that outlive their clients. Not a timed test: a run
// passes when nothing failed, and the figures are for a human to read.
// `npm run bench:soak`; settings: SOAK_DURATION (s, 180), SOAK_CONNECTIONS
// (workers, 32), SOAK_IDLE_TTL (the server's MCP_SESSION_IDLE_TTL_SEC, 30),
// SOAK_INTERVAL (s per throughput row, 10), SOAK_REDIS=1 (issue 9: two
// replicas sharing one local Redis, every client's requests spread over both,
// and Redis's own memory and keys checked after the drain).
//
// Three kinds of client, each as its own token subject (the session cap is
// per subject, and one flood must not decide what happens to the others):
// - steady: most workers, each in one long-lived session, tools/call
//   get_news_sentiment (a cache hit) with a tools/list every fourth request;
// - churn: initialize, notifications/initialized, tools/call, DELETE, again;
// - idle: bursts of sessions left idle. A burst opens more sessions than the
//   per-subject cap, so the oldest are evicted; then nothing touches them and
//   the store's sweep must end them all within the idle TTL (plus its sweep
//   period), which the soak checks through the server's mcpSessions.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { loadavg } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent } from 'undici'
import { ask, guardProcess, startChild, stopAll } from './lib/children.js'
import { BENCH_DIR, LOG_LEVEL, SERVE, machine, soakSettings, startFixtures, thisServerEnv } from './lib/setup.js'
import {
  deleteSession, initializeMessage, initializedNotification, mcpHeaders, post, sessionOf, toolsCallMessage, toolsListMessage
} from './lib/mcp-client.js'
import { SoakRecord } from './lib/soak-record.js'
import { startRedis } from './lib/redis.js'
import { soakMarkdown } from './lib/soak-report.js'

const settings = soakSettings()
const startedAt = new Date()
const log = (...args) => console.error(`[${((Date.now() - startedAt) / 1000).toFixed(0).padStart(4)} s]`, ...args)

/** The server's default MCP_MAX_SESSIONS_PER_SUBJECT, set explicitly so the checks below know it. */
const PER_SUBJECT_CAP = 100
const SUBJECTS = { steady: 'soak-steady', churn: 'soak-churn', idle: 'soak-idle' }
const churnWorkers = Math.max(1, Math.round(settings.connections / 4))
const idleWorkers = Math.max(1, Math.round(settings.connections / 16))
const steadyWorkers = settings.connections - churnWorkers - idleWorkers
/** Enough past the cap that the oldest sessions of a burst are evicted whatever order its concurrent opens land in. */
const IDLE_BURST = PER_SUBJECT_CAP + Math.max(20, 2 * idleWorkers)
const ttlMs = settings.idleTtlSec * 1000
/** How long an untouched session may outlive its TTL: the store sweeps every TTL/4 (lib/mcp-session-store.ts); half a TTL plus 2 s leaves room. */
const EXPIRY_WAIT_MS = ttlMs * 1.5 + 2000

// Setup, the load, a drain of up to EXPIRY_WAIT_MS and the report.
guardProcess((settings.duration + 1.5 * settings.idleTtlSec + 180) * 1000)

const agent = new Agent({ connections: settings.connections, pipelining: 1, headersTimeout: 10_000, bodyTimeout: 10_000 })
const stop = new AbortController()
let record
let urls
let tokens
let server
let servers
let redis
let turn = 0
/** The next replica, round robin: a load balancer without sticky sessions. */
const target = () => urls[turn++ % urls.length]

/** Waits `ms`, or less if the load stops; true if the load is still on. */
/** Keys of a session (the session, its owner's index, its stream events, its pending requests and subscriptions): none may outlive the drain. */
const SESSION_KEY = /^(session|sessions|owner|events|resumed|pending|subscriptions?)(:|$)/
function sessionKeys (keys) {
  return keys.filter(k => SESSION_KEY.test(k.key))
}

async function pause (ms) {
  try {
    await sleep(ms, undefined, { signal: stop.signal })
  } catch {}
  return !stop.signal.aborted
}

/**
 * One request, timed and checked. `check(res)` names what is wrong with the
 * answer (undefined: nothing); `expectedStatus` is a non-2xx status that is
 * the right answer here (a probe of a session that must be gone).
 */
async function send (role, kind, request, check, expectedStatus) {
  const t0 = performance.now()
  let res
  try {
    res = await request()
  } catch (err) {
    record.error(role, kind, 'transport error or unparsable body', err.message)
    return undefined
  }
  const now = performance.now()
  const expecting = expectedStatus !== undefined
  record.answered(role, kind, now - t0, now, expecting && res.status === expectedStatus)
  const problem = (expecting ? res.status !== expectedStatus : res.status >= 300)
    ? ['unexpected HTTP status', `HTTP ${res.status}${expecting ? ` (expected ${expectedStatus})` : ''} ${res.text.slice(0, 200)}`]
    : expecting ? undefined : check?.(res)
  if (problem !== undefined) {
    record.error(role, kind, problem[0], problem[1], now)
    return undefined
  }
  return res
}

/** A JSON-RPC result that is not a tool's isError result. */
function rpcResult (res) {
  const message = res.message
  if (message?.error !== undefined) return ['JSON-RPC error', JSON.stringify(message.error)]
  if (message?.result === undefined) return ['answer without a result', res.text.slice(0, 200)]
  if (message.result.isError === true) return ['isError result', JSON.stringify(message.result.content ?? message.result).slice(0, 200)]
  return undefined
}

const noContent = (status) => (res) => res.status === status ? undefined : ['unexpected HTTP status', `HTTP ${res.status}, expected ${status}`]

/** initialize, then notifications/initialized: the session, or undefined (the failure is recorded). */
async function open (role, token) {
  const init = await send(role, 'initialize', () => post(target(), mcpHeaders(token), initializeMessage(), agent),
    res => rpcResult(res) ?? (typeof res.headers['mcp-session-id'] === 'string' ? undefined : ['answer without a result', 'no Mcp-Session-Id']))
  if (init === undefined) return undefined
  const session = sessionOf(init.headers, init.message.result)
  const note = await send(role, 'notifications/initialized', () => post(target(), mcpHeaders(token, session), initializedNotification, agent), noContent(202))
  return note === undefined ? undefined : session
}

const longLived = new Set()

async function steadyWorker () {
  const token = tokens[SUBJECTS.steady]
  let id = 1
  while (!stop.signal.aborted) {
    const session = await open('steady', token)
    if (session === undefined) {
      await pause(200)
      continue
    }
    longLived.add(session)
    const headers = mcpHeaders(token, session)
    while (!stop.signal.aborted) {
      const list = ++id % 4 === 0
      const res = await send('steady', list ? 'tools/list' : 'tools/call',
        () => post(target(), headers, list ? toolsListMessage(id) : toolsCallMessage(id), agent), rpcResult)
      // A failure is recorded; a lost session is replaced rather than failing every request after it.
      if (res === undefined) break
    }
    if (!stop.signal.aborted) longLived.delete(session)
  }
}

async function churnWorker () {
  const token = tokens[SUBJECTS.churn]
  while (!stop.signal.aborted) {
    const session = await open('churn', token)
    if (session === undefined) {
      await pause(200)
      continue
    }
    await send('churn', 'tools/call', () => post(target(), mcpHeaders(token, session), toolsCallMessage(2), agent), rpcResult)
    await send('churn', 'DELETE', () => deleteSession(target(), token, session, agent), noContent(200))
  }
}

/** Sessions as the deployment holds them: the server's store, or Redis when the replicas share one. */
async function heldSessions () {
  return redis !== undefined ? await redis.sessions() : await ask(server, 'sessions')
}

async function idleSessions (subject) {
  return (await heldSessions()).bySubject[subject] ?? 0
}

/** Runs `count` tasks, `concurrency` at a time. */
async function pooled (count, concurrency, task) {
  let next = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < count && !stop.signal.aborted) {
      next++
      await task()
    }
  }))
}

/** The idle workers together: a burst past the cap, checks, then silence until every session must have expired. */
async function idleCycles () {
  const token = tokens[SUBJECTS.idle]
  const listProbe = (kind, session, expectedStatus) => send('idle', kind,
    () => post(target(), mcpHeaders(token, session), toolsListMessage(3), agent), rpcResult, expectedStatus)
  const idle = { bursts: 0, opened: 0, expiredChecks: 0 }
  while (!stop.signal.aborted) {
    const opened = []
    const burstStarted = Date.now()
    await pooled(IDLE_BURST, idleWorkers, async () => {
      const session = await open('idle', token)
      if (session !== undefined) opened.push(session)
    })
    if (stop.signal.aborted) break
    idle.bursts++
    idle.opened += opened.length
    // The subject holds exactly its cap: the oldest sessions were evicted to make room (never refused).
    // On a machine so loaded that the burst outlasted the idle TTL, its first sessions have expired meanwhile: at most the cap, then.
    const held = await idleSessions(SUBJECTS.idle)
    const burstOutlastedTtl = Date.now() - burstStarted >= settings.idleTtlSec * 1000
    if (burstOutlastedTtl ? held > PER_SUBJECT_CAP : held !== PER_SUBJECT_CAP) record.error('idle', 'cap', 'per-subject cap not held', `${held} sessions after opening ${opened.length}, cap ${PER_SUBJECT_CAP}`)
    await listProbe('probe evicted', opened[0], 404)
    await listProbe('probe alive', opened.at(-1))
    if (!await pause(EXPIRY_WAIT_MS)) break
    // Nothing touched them since: only the sweep can have ended them.
    const left = await idleSessions(SUBJECTS.idle)
    if (left !== 0) record.error('idle', 'expiry', 'idle sessions not expired', `${left} sessions still held ${EXPIRY_WAIT_MS / 1000} s after the last use (TTL ${settings.idleTtlSec} s)`)
    await listProbe('probe expired', opened.at(-1), 404)
    idle.expiredChecks++
  }
  return idle
}

async function main () {
  const m = machine()
  const loadStart = loadavg()
  log(`${m.nproc} × ${m.cpu}, Node ${m.node}; ${settings.duration} s, ${settings.connections} workers ` +
    `(${steadyWorkers} steady, ${churnWorkers} churn, ${idleWorkers} idle), idle TTL ${settings.idleTtlSec} s`)
  const fixtures = await startFixtures({ subjects: Object.values(SUBJECTS) })
  tokens = fixtures.tokens
  if (settings.redis) redis = await startRedis()
  const env = thisServerEnv(fixtures, {
    MCP_SESSION_IDLE_TTL_SEC: String(settings.idleTtlSec),
    MCP_MAX_SESSIONS_PER_SUBJECT: String(PER_SUBJECT_CAP),
    // Rate-limit counters expire within the drain, so that Redis can be checked for leftovers.
    ...(redis !== undefined && { REDIS_URL: redis.url, MCP_RATE_LIMIT_WINDOW_SEC: String(Math.min(60, settings.idleTtlSec)) })
  })
  servers = []
  for (const name of redis !== undefined ? ['replica A', 'replica B'] : ['this server']) {
    const app = await startChild(SERVE, { name, execArgv: ['--expose-gc'], options: { kind: 'app', env, logLevel: LOG_LEVEL } })
    servers.push({ name, child: app.child, url: app.ready.url })
  }
  server = servers[0].child
  urls = servers.map(s => s.url)
  log(servers.map(s => `${s.name} ${s.url}`).join(', '))
  const redisStart = redis === undefined ? undefined : { usedMemory: await redis.usedMemory(), keys: await redis.keys() }

  const memory = { boot: await ask(server, 'memory') }
  // Warm the news cache (one upstream call), so every later tools/call is a hit; then the baseline.
  record = new SoakRecord(performance.now(), settings.intervalSec * 1000)
  const warm = await open('warm-up', tokens[SUBJECTS.steady])
  // Every replica warms its own news cache (issue 9's shared cache is another engineer's).
  for (const u of urls) {
    if (warm === undefined || await send('warm-up', 'tools/call', () => post(u, mcpHeaders(tokens[SUBJECTS.steady], warm), toolsCallMessage(), agent), rpcResult) === undefined) {
      throw new Error(`warm-up failed: ${record.samples.join('; ')}`)
    }
  }
  await deleteSession(urls[0], tokens[SUBJECTS.steady], warm, agent)
  memory.start = await ask(server, 'settledMemory')
  const startOfB = servers[1] === undefined ? undefined : await ask(servers[1].child, 'settledMemory')
  const hitsStart = await ask(fixtures.child, 'hits')
  const cpuStart = await ask(server, 'cpu')
  const ownCpuStart = process.cpuUsage()

  record = new SoakRecord(performance.now(), settings.intervalSec * 1000)
  const samples = []
  const sampler = setInterval(() => {
    Promise.all([ask(server, 'memory'), ask(server, 'sessions')]).then(
      ([mem, sessions]) => {
        samples.push({ at: (performance.now() - record.startedAt) / 1000, ...mem, sessions: sessions.size, load: loadavg()[0] })
        const last = record.intervals.at(-2)
        const rate = last === undefined ? 0 : Object.values(last.byKind).reduce((a, b) => a + b, 0) / settings.intervalSec
        log(`${Math.round(rate)} req/s, errors ${record.errorCount}, RSS ${(mem.rss / 2 ** 20).toFixed(1)} MB, heapUsed ${(mem.heapUsed / 2 ** 20).toFixed(1)} MB, sessions ${sessions.size}`)
      },
      err => record.error('soak', 'sample', 'server did not answer over IPC', err.message))
  }, settings.intervalSec * 1000)
  const loadTimer = setTimeout(() => stop.abort(), settings.duration * 1000)

  const workers = [
    ...Array.from({ length: steadyWorkers }, steadyWorker),
    ...Array.from({ length: churnWorkers }, churnWorker)
  ]
  const idle = await idleCycles()
  await Promise.all(workers)
  clearTimeout(loadTimer)
  clearInterval(sampler)
  const loadSec = (performance.now() - record.startedAt) / 1000
  const share = ({ user, system }) => 100 * (user + system) / (loadSec * 1e6)
  const ownCpu = share(process.cpuUsage(ownCpuStart))
  const cpu = await ask(server, 'cpu')
  const serverCpu = share({ user: cpu.user - cpuStart.user, system: cpu.system - cpuStart.system })
  memory.endOfLoad = await ask(server, 'memory')
  const sessionsEndOfLoad = await ask(server, 'sessions')
  samples.push({ at: loadSec, ...memory.endOfLoad, sessions: sessionsEndOfLoad.size, load: loadavg()[0] })
  log(`load done: ${loadSec.toFixed(0)} s, sessions ${sessionsEndOfLoad.size}`)

  // Drain: the steady clients close their sessions; whatever else is left must expire.
  for (const session of longLived) {
    await send('steady', 'DELETE', () => deleteSession(target(), tokens[SUBJECTS.steady], session, agent), noContent(200))
  }
  const drainStarted = Date.now()
  // Drained when no replica holds a session (nor a copy of one) and Redis holds no more keys than before the load.
  const drained = async () => {
    const held = await heldSessions()
    let copies = 0
    for (const s of servers) copies += (await ask(s.child, 'sessions')).size
    const keys = redis === undefined ? [] : sessionKeys(await redis.keysWithTtl())
    return { held, done: held.size === 0 && copies === 0 && keys.length === 0 }
  }
  let state = await drained()
  while (!state.done && Date.now() - drainStarted < EXPIRY_WAIT_MS + (redis === undefined ? 0 : 60_000)) {
    await sleep(1000)
    state = await drained()
  }
  const sessionsAfterDrain = state.held
  if (sessionsAfterDrain.size !== 0) {
    record.error('soak', 'drain', 'sessions left after the drain', JSON.stringify(sessionsAfterDrain.bySubject))
  }
  memory.end = await ask(server, 'settledMemory')
  const hitsEnd = await ask(fixtures.child, 'hits')
  const replicaNotes = []
  if (redis !== undefined) {
    const endOfB = await ask(servers[1].child, 'settledMemory')
    const redisEnd = { usedMemory: await redis.usedMemory(), keys: await redis.keys() }
    const grew = redisEnd.usedMemory - redisStart.usedMemory
    // What may stay: the news cache (entries, their index and sizes), the
    // day's quota counters and the pace window, each with a TTL. What must
    // not: anything of a session (the session, its owner's index, its
    // events), or any key without a TTL.
    const left = await redis.keysWithTtl()
    const ofSessions = sessionKeys(left)
    if (ofSessions.length > 0) record.error('soak', 'drain', 'session keys left in Redis after the drain', ofSessions.map(k => k.key).join(', '))
    const forever = left.filter(k => k.ttlMs < 0)
    if (forever.length > 0) record.error('soak', 'drain', 'keys without a TTL in Redis', forever.map(k => k.key).join(', '))
    replicaNotes.push('', '### Redis mode (issue 9)', '',
      'Two replicas (A and B, each in its own process) share one local redis-server; every request goes to the next replica in turn (no sticky sessions), so a session is opened on one replica and used and deleted on the other. The figures above are replica A\'s.', '',
      '| | before the load | after the drain |', '| --- | ---: | ---: |',
      `| replica B RSS | ${(startOfB.rss / 2 ** 20).toFixed(1)} MB | ${(endOfB.rss / 2 ** 20).toFixed(1)} MB |`,
      `| replica B heapUsed | ${(startOfB.heapUsed / 2 ** 20).toFixed(1)} MB | ${(endOfB.heapUsed / 2 ** 20).toFixed(1)} MB |`,
      `| Redis used_memory | ${(redisStart.usedMemory / 2 ** 10).toFixed(0)} KiB | ${(redisEnd.usedMemory / 2 ** 10).toFixed(0)} KiB (${grew >= 0 ? '+' : ''}${(grew / 2 ** 10).toFixed(0)} KiB) |`,
      `| Redis keys | ${redisStart.keys} | ${redisEnd.keys} |`, '',
      'Keys left after the drain (none of a session; each with its time to live):', '',
      ...left.map(k => `- \`${k.key}\`: ${k.ttlMs < 0 ? 'no TTL' : `${Math.round(k.ttlMs / 1000)} s`}`))
    await redis.stop()
  }

  const report = soakMarkdown({
    machine: { ...m, loadStart, loadEnd: loadavg() },
    settings,
    workers: { steady: steadyWorkers, churn: churnWorkers, idle: idleWorkers },
    idle: { ...idle, burst: IDLE_BURST, cap: PER_SUBJECT_CAP, expiryWaitSec: EXPIRY_WAIT_MS / 1000 },
    record,
    samples,
    memory,
    sessions: { endOfLoad: sessionsEndOfLoad, afterDrain: sessionsAfterDrain, drainSec: (Date.now() - drainStarted) / 1000 },
    cpu: { server: serverCpu, load: ownCpu },
    upstream: { calls: hitsEnd.upstream - hitsStart.upstream, jwks: hitsEnd.jwks - hitsStart.jwks },
    loadSec,
    startedAt: startedAt.toISOString().replace(/\.\d+Z$/, 'Z'),
    elapsedSec: (Date.now() - startedAt) / 1000
  })
  const full = report + (replicaNotes.length > 0 ? replicaNotes.join('\n') + '\n' : '')
  writeFileSync(join(BENCH_DIR, redis !== undefined ? 'soak-redis-results.md' : 'soak-results.md'), full)
  console.log(full)
  log(`written to bench/${redis !== undefined ? 'soak-redis-results.md' : 'soak-results.md'}`)
  return record.errorCount
}

let errors = 1
try {
  errors = await main()
} finally {
  stop.abort()
  await agent.close().catch(() => {})
  await stopAll()
}
if (errors > 0) {
  console.error(`soak: ${errors} error(s)`)
  process.exitCode = 1
}
