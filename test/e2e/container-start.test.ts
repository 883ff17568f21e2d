import t from 'tap'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { LocalIssuer } from '../helpers/issuer.js'
import { FakeAlphaVantage } from '../helpers/fake-alpha-vantage.js'
import { freePort } from '../helpers/mcp-app.js'
import { startServerProcess } from '../helpers/server-process.js'

const require = createRequire(import.meta.url)
const dockerfile = readFileSync(new URL('../../Dockerfile', import.meta.url), 'utf8')
const lines = dockerfile.replace(/\\\n\s*/g, ' ').split('\n')

/** The exec-form array of an instruction in the final stage. */
function execForm (instruction: string): string[] {
  const line = lines.filter(l => l.startsWith(`${instruction} `)).at(-1) as string
  return JSON.parse(line.slice(line.indexOf('['))) as string[]
}

const finalStage = lines.slice(lines.findLastIndex(l => l.startsWith('FROM ')))
const env: Record<string, string> = {}
for (const line of finalStage.filter(l => l.startsWith('ENV '))) {
  for (const [, key, value] of line.slice(4).matchAll(/(\w+)=(\S+)/g)) env[key as string] = value as string
}

t.test('the image: multi-stage, a current LTS base, non-root, production, fastify start with a grace delay, a health check', async t => {
  const froms = lines.filter(l => l.startsWith('FROM '))
  t.equal(froms.length, 2, 'build stage and runtime stage')
  t.match(dockerfile, /ARG NODE_IMAGE=node:(22|24)-/, 'a supported LTS line, not Node 20')
  t.match(dockerfile, /npm prune --omit=dev/, 'the runtime stage gets production dependencies only')
  t.match(finalStage.find(l => l.startsWith('USER ')), /^USER node$/, 'runs as the unprivileged node user')
  t.equal(env.NODE_ENV, 'production')
  const cmd = execForm('CMD')
  t.same(cmd.slice(0, 3), ['node', 'node_modules/fastify-cli/cli.js', 'start'])
  t.ok(cmd.includes('--close-grace-delay'), 'a close grace delay')
  t.match(execForm('HEALTHCHECK').join(' '), /\/health/)
})

// No Docker engine here: run the image's own start command, in production
// mode, with a ScaleKit-shaped configuration, outside Docker.
// A fresh process compiles the sources under tap's loader: slow on a busy machine.
t.setTimeout(240_000)

t.test('the image start command serves in production and exits cleanly on SIGTERM', async t => {
  const issuer = await LocalIssuer.start()
  const upstream = await FakeAlphaVantage.start()
  t.teardown(async () => { await issuer.close(); await upstream.close() })
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  issuer.audience = [`${base}/mcp`]

  const cmd = execForm('CMD').slice(1).map((arg, i, all) => {
    if (arg === 'node_modules/fastify-cli/cli.js') return require.resolve('fastify-cli/cli.js')
    if (arg === 'dist/app.js') return new URL('../../app.ts', import.meta.url).pathname // the sources dist/ is built from
    if (all[i - 1] === '-a') return '127.0.0.1' // tests listen on loopback only
    if (all[i - 1] === '-p') return String(port)
    return arg
  })
  const { child, output, exited } = await startServerProcess(t, cmd, {
    // The parent's environment carries tap's loader settings; the image's ENV overrides it.
    ...process.env,
    ...env,
    ...issuer.scalekitEnv(`${base}/mcp`),
    ALPHA_VANTAGE_API_KEY: 'CONTAINER-TEST-KEY',
    ALPHA_VANTAGE_BASE_URL: upstream.url,
    // Not what this test is about, and a loaded CI machine lags its loop for seconds.
    OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0'
  }, `${base}/ready`, 150_000)

  // The image's HEALTHCHECK, run as Docker would run it.
  const [, ...healthArgs] = execForm('HEALTHCHECK')
  const healthCode = await new Promise<number>(resolve => {
    execFile(process.execPath, healthArgs, { env: { PORT: String(port) } }, err => resolve(err === null ? 0 : (err.code as number)))
  })
  t.equal(healthCode, 0, 'the HEALTHCHECK passes')

  const challenge = await fetch(`${base}/mcp`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: '{}' })
  t.equal(challenge.status, 401)
  t.match(challenge.headers.get('www-authenticate'), `resource_metadata="${base}/.well-known/oauth-protected-resource/mcp"`)
  const init = await fetch(`${base}/mcp`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', authorization: `Bearer ${await issuer.token()}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'container', version: '1' } } })
  })
  t.equal(init.status, 200, 'a ScaleKit-shaped token is accepted')
  t.ok(init.headers.get('mcp-session-id'))
  t.equal((await fetch(`${base}/docs`)).status, 200)

  child.kill('SIGTERM')
  const [code, signal] = await exited as [number | null, string | null]
  t.equal(code, 0, `exits cleanly on SIGTERM (signal ${String(signal)})`)
  t.notMatch(output(), /DEVELOPMENT MODE/, 'production: no development issuer')
  t.notMatch(output(), /CONTAINER-TEST-KEY/, 'the API key is never logged')
  const logLines = output().split('\n').filter(l => l.startsWith('{')).map(l => JSON.parse(l) as { level: number, msg: string, url?: string })
  t.ok(logLines.length > 0, 'JSON log lines')
  t.notOk(logLines.some(l => l.level < 30), 'the level is info (LOG_LEVEL from the image)')
  t.notOk(logLines.some(l => l.msg === 'incoming request'), 'one line per request')
  t.notOk(logLines.some(l => l.url === '/ready' || l.url === '/health'), 'probes are not logged at info')
  t.ok(logLines.some(l => l.url === '/mcp' && l.msg === 'request completed'), 'MCP requests are')
})
