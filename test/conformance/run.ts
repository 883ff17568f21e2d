/**
 * `npm run conformance`: runs every server scenario of
 * @modelcontextprotocol/conformance against this server with the conformance
 * fixture plugin, and compares the outcome with conformance/expected-failures.json.
 *
 * The server runs here, on the Node that runs npm (20+, the server's runtime);
 * the suite needs Node 22+, so each scenario runs in a child process on the
 * Node of the `node` dev dependency. Exits 0 when every scenario passed or
 * failed as the file expects, 1 otherwise; stops by itself within the time limit.
 *
 * Two passes: one replica with its state in memory, then two replicas sharing
 * a throwaway redis-server with the requests sent to each in turn (scenarios
 * of that pass are named `redis:<scenario>`).
 *
 * Options: scenario names to run only those; `--memory` or `--redis` for one
 * pass only; `--verbose` prints the suite's output of every scenario that did
 * not pass; `--keep` keeps the results directory.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { formatSummary, judge, parseExpectedFailures, parseScenarioList, type Check, type ScenarioResult } from './baseline.js'
import { Redis } from 'ioredis'
import { startConformanceServer } from './server.js'

/** One scenario's time; the slowest (SSE polling) needs about 15 s when the server misbehaves. */
const SCENARIO_TIMEOUT_MS = 60_000
/** The whole run (both passes), servers' start and stop included. */
const RUN_TIMEOUT_MS = 8 * 60_000
/** Scenarios at once: they share the server, each in its own session. */
const CONCURRENCY = 4

// Compiled to dist/conformance/test/conformance/run.js; the repository is four levels up.
const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../..')
const suiteNode = join(root, 'node_modules/node/bin/node')
const suiteCli = join(root, 'node_modules/@modelcontextprotocol/conformance/dist/index.js')
const expectedFile = join(root, 'conformance/expected-failures.json')

interface Outcome { code: number | null, output: string, timedOut: boolean }

/** The processes this run started (the suite's, each in a process group of its own, and redis-server): killed if the run is stopped. */
const children = new Set<ChildProcess>()

function killGroup (child: ChildProcess): void {
  try { process.kill(-(child.pid as number), 'SIGKILL') } catch {}
}

/** Ends the run now (time limit, Ctrl-C): nothing it started outlives it. */
function abort (message: string, code: number): never {
  console.error(message)
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) killGroup(child)
  }
  process.exit(code)
}

/** Runs the suite's CLI on the suite's Node; the process group is killed at the timeout. */
function runSuite (args: string[], timeoutMs: number): Promise<Outcome> {
  return new Promise(resolve => {
    const child = spawn(suiteNode, [suiteCli, ...args], { cwd: root, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    let output = ''
    const collect = (chunk: Buffer): void => { output += chunk.toString() }
    child.stdout.on('data', collect)
    child.stderr.on('data', collect)
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      killGroup(child)
    }, timeoutMs)
    child.on('error', err => { output += String(err) })
    child.on('close', code => {
      clearTimeout(timer)
      children.delete(child)
      resolve({ code, output, timedOut })
    })
  })
}

async function readChecks (dir: string): Promise<Check[] | undefined> {
  // The suite writes <dir>/server-<scenario>-<timestamp>/checks.json.
  const entries = existsSync(dir) ? await readdir(dir) : []
  const run = entries.find(e => e.startsWith('server-'))
  if (run === undefined) return undefined
  try {
    return JSON.parse(await readFile(join(dir, run, 'checks.json'), 'utf8')) as Check[]
  } catch {
    return undefined
  }
}

async function runScenario (url: string, scenario: string, resultsDir: string): Promise<ScenarioResult & { output: string }> {
  const dir = join(resultsDir, scenario)
  const outcome = await runSuite(['server', '--url', url, '--scenario', scenario, '-o', dir], SCENARIO_TIMEOUT_MS)
  const checks = await readChecks(dir)
  if (checks !== undefined) return { scenario, checks, output: outcome.output }
  const why = outcome.timedOut ? `no result within ${SCENARIO_TIMEOUT_MS / 1000} s` : `the suite wrote no result (exit code ${String(outcome.code)})`
  return { scenario, checks: [{ id: 'runner', name: 'Runner', status: 'FAILURE', errorMessage: why }], output: outcome.output }
}

/**
 * A throwaway redis-server, no persistence, listening on a unix socket only
 * (no port to find, nothing reachable from outside); killed after the pass.
 */
async function startRedis (): Promise<{ url: string, stop: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'mcp-conformance-redis-'))
  const socket = join(dir, 'redis.sock')
  const child = spawn('redis-server', ['--port', '0', '--unixsocket', socket, '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { detached: true, stdio: 'ignore' })
  children.add(child)
  const exited = new Promise<void>(resolve => child.once('exit', () => { children.delete(child); resolve() }))
  const stop = async (): Promise<void> => {
    if (child.exitCode === null) child.kill('SIGKILL')
    await exited
    await rm(dir, { recursive: true, force: true })
  }
  const probe = new Redis(socket, { lazyConnect: true, maxRetriesPerRequest: null, retryStrategy: () => 25 })
  probe.on('error', () => {}) // ENOENT until redis-server has made its socket: retried
  try {
    const failed = exited.then(() => { throw new Error('redis-server exited: is it installed (bash scripts/system-deps.sh)?') })
    const late = new Promise<never>((_resolve, reject) => setTimeout(() => reject(new Error('redis-server did not answer within 10 s')), 10_000).unref())
    await Promise.race([probe.ping(), failed, late])
  } catch (err) {
    await stop()
    throw err
  } finally {
    probe.disconnect()
  }
  return { url: socket, stop }
}

async function main (): Promise<number> {
  const args = process.argv.slice(2)
  const verbose = args.includes('--verbose')
  const keep = args.includes('--keep')
  const only = args.filter(a => !a.startsWith('--'))
  for (const [file, what] of [[suiteNode, 'the Node 22 of the `node` dev dependency'], [suiteCli, '@modelcontextprotocol/conformance']] as const) {
    if (!existsSync(file)) throw new Error(`conformance: ${what} is missing (${file}); run npm ci`)
  }

  const expected = parseExpectedFailures(await readFile(expectedFile, 'utf8'))
  const listing = await runSuite(['list', '--server'], 30_000)
  const suiteScenarios = parseScenarioList(listing.output)
  if (suiteScenarios.length === 0) throw new Error(`conformance: the suite listed no server scenarios:\n${listing.output}`)
  const unknown = only.filter(s => !suiteScenarios.includes(s))
  if (unknown.length > 0) throw new Error(`conformance: unknown scenario ${unknown.join(', ')}; the suite has ${suiteScenarios.join(', ')}`)
  const scenarios = only.length > 0 ? only : suiteScenarios

  const modes = args.includes('--memory') ? ['memory'] : args.includes('--redis') ? ['redis'] : ['memory', 'redis']
  const version = await runSuite(['--version'], 30_000)
  const nodeVersion = await new Promise<string>(resolve => {
    const child = spawn(suiteNode, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] })
    let out = ''
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString() })
    child.on('close', () => resolve(out.trim()))
  })
  console.log(`conformance ${version.output.trim()} on Node ${nodeVersion}, the server on Node ${process.version}`)
  const resultsDir = await mkdtemp(join(tmpdir(), 'mcp-conformance-'))
  const results: Array<ScenarioResult & { output: string }> = []
  // The redis pass: scenario names get a `redis:` prefix, in the summary and in the expected-failures file.
  const order = modes.flatMap(mode => scenarios.map(s => mode === 'memory' ? s : `redis:${s}`))
  for (const mode of modes) {
    const redis = mode === 'redis' ? await startRedis() : undefined
    try {
      const server = await startConformanceServer({ ...(redis !== undefined && { redisUrl: redis.url }) })
      console.log(`${mode === 'memory' ? 'One replica, state in memory' : `Two replicas sharing ${redis?.url ?? ''}, requests to each in turn`}: ` +
        `${scenarios.length} scenarios against ${server.url} (a proxy adding the bearer token, to ${server.mcpUrls.join(' and ')})`)
      try {
        const queue = [...scenarios]
        await Promise.all(Array.from({ length: Math.min(CONCURRENCY, queue.length) }, async () => {
          for (let scenario = queue.shift(); scenario !== undefined; scenario = queue.shift()) {
            const started = Date.now()
            const name = mode === 'memory' ? scenario : `redis:${scenario}`
            const result = await runScenario(server.url, scenario, join(resultsDir, mode))
            results.push({ ...result, scenario: name })
            console.log(`  ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`)
          }
        }))
      } finally {
        await server.close()
      }
    } finally {
      await redis?.stop()
    }
  }
  // The suite's order, whatever order the scenarios finished in.
  results.sort((a, b) => order.indexOf(a.scenario) - order.indexOf(b.scenario))
  const judgement = judge(results, expected, [...suiteScenarios, ...suiteScenarios.map(s => `redis:${s}`)])
  if (verbose) {
    for (const r of results) {
      const v = judgement.verdicts.find(x => x.scenario === r.scenario)
      if (v?.verdict !== 'pass') console.log(`\n--- ${r.scenario}\n${r.output}`)
    }
  }
  console.log(`\n${formatSummary(judgement)}`)
  if (keep) console.log(`Results: ${resultsDir}`)
  else await rm(resultsDir, { recursive: true, force: true })
  return judgement.ok ? 0 : 1
}

setTimeout(() => abort(`conformance: the run took longer than ${RUN_TIMEOUT_MS / 60_000} minutes; stopped`, 1), RUN_TIMEOUT_MS).unref()
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => abort(`conformance: ${signal}; stopped`, 130))

main().then(code => {
  process.exitCode = code
}, (err: Error) => {
  console.error(err.message)
  process.exitCode = 1
}).finally(() => {
  // Nothing of the server may keep the process alive past its verdict.
  setTimeout(() => process.exit(), 2000).unref()
})
