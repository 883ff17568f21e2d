// This server under node --cpu-prof while autocannon hammers tools/call in an
// established session; then the top self-time functions. The profile lands in
// bench/profiles/ (gitignored). Standalone: `node bench/profile.js`
// (BENCH_PROFILE_DURATION, BENCH_CONNECTIONS); run.js calls it with BENCH_PROFILE=1.
import { mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startChild, stopChild, stopAll, guardProcess } from './lib/children.js'
import { BENCH_DIR, LOG_LEVEL, SERVE, benchSettings, startFixtures, thisServerEnv } from './lib/setup.js'
import { expectResult, mcpHeaders, openSession, toolsCallMessage } from './lib/mcp-client.js'
import { hammer } from './lib/load.js'
import { summarize, summaryMarkdown } from './profile-summary.js'

export const PROFILE_DIR = join(BENCH_DIR, 'profiles')
const PROFILE_NAME = 'this-server-session-tools-call.cpuprofile'

export async function profileThisServer ({ fixtures, settings }) {
  mkdirSync(PROFILE_DIR, { recursive: true })
  const file = join(PROFILE_DIR, PROFILE_NAME)
  rmSync(file, { force: true })
  const { child, ready } = await startChild(SERVE, {
    name: 'this server (profiled)',
    execArgv: ['--cpu-prof', '--cpu-prof-dir', PROFILE_DIR, '--cpu-prof-name', PROFILE_NAME],
    options: { kind: 'app', env: thisServerEnv(fixtures), logLevel: LOG_LEVEL }
  })
  let result
  try {
    const session = await openSession(ready.url, fixtures.token)
    const headers = mcpHeaders(fixtures.token, session)
    await expectResult(ready.url, headers, toolsCallMessage())
    // Warm the JIT first, so the profile is mostly the steady state.
    await hammer({ url: ready.url, headers, message: toolsCallMessage(), connections: settings.connections, duration: 2 })
    result = await hammer({ url: ready.url, headers, message: toolsCallMessage(), connections: settings.connections, duration: settings.profileDuration })
  } finally {
    await stopChild(child, 10_000)
  }
  const summary = summarize(JSON.parse(readFileSync(file, 'utf8')), 25)
  const title = `this server, session tools/call under --cpu-prof (${Math.round(result.rps)} req/s while profiled; startup and a 2 s warm-up included)`
  return { file, summary, markdown: summaryMarkdown(summary, title) }
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const settings = benchSettings()
  guardProcess((settings.profileDuration + 120) * 1000)
  try {
    const fixtures = await startFixtures()
    const { file, markdown } = await profileThisServer({ fixtures, settings })
    console.log(markdown)
    console.log(`\nprofile: ${file}`)
  } finally {
    await stopAll()
  }
}
