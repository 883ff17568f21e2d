// Two replicas as operators run them: two `fastify start` processes with the
// same configuration and one REDIS_URL, talking to one Redis.
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { createRequire } from 'node:module'
import { LocalIssuer } from '../helpers/issuer.js'
import { FakeAlphaVantage } from '../helpers/fake-alpha-vantage.js'
import { freePort } from '../helpers/mcp-app.js'
import { RedisServer } from '../helpers/redis-server.js'

// Two TypeScript apps booting under the test loader on shared cores take more than the suite's 60 s.
t.setTimeout(240_000)

const require = createRequire(import.meta.url)
const cli = require.resolve('fastify-cli/cli.js')
const appPath = new URL('../../app.ts', import.meta.url).pathname
const RESOURCE = 'http://127.0.0.1:10000/mcp'

async function startReplica (t: Test, env: Record<string, string>): Promise<string> {
  const port = await freePort()
  const child = spawn(process.execPath, [...process.execArgv, cli, 'start', '-a', '127.0.0.1', '-p', String(port), '-l', 'warn', appPath], {
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let output = ''
  child.stdout.on('data', chunk => { output += String(chunk) })
  child.stderr.on('data', chunk => { output += String(chunk) })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const base = `http://127.0.0.1:${port}`
  // Cores shared with the rest of the suite: starting the TypeScript app can take a while.
  const deadline = Date.now() + 180_000
  for (;;) {
    try {
      if ((await fetch(`${base}/ready`)).ok) return base
    } catch {}
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`replica did not become ready:\n${output}`)
    await new Promise(resolve => setTimeout(resolve, 200))
  }
}

t.test('a session opened on process A is used on process B; DELETE on B is 404 on A', async t => {
  const issuer = await LocalIssuer.start()
  const upstream = await FakeAlphaVantage.start()
  t.teardown(async () => { await issuer.close(); await upstream.close() })
  issuer.audience = [RESOURCE]
  const redis = await RedisServer.start(t)
  const env = {
    ...issuer.scalekitEnv(RESOURCE),
    MCP_RESOURCE: RESOURCE,
    ALPHA_VANTAGE_API_KEY: 'REPLICA-TEST-KEY',
    ALPHA_VANTAGE_BASE_URL: upstream.url,
    REDIS_URL: redis.url
  }
  const [a, b] = await Promise.all([startReplica(t, env), startReplica(t, env)])
  const token = await issuer.token()
  const headers = (session?: string): Record<string, string> => ({
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    authorization: `Bearer ${token}`,
    ...(session !== undefined && { 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' })
  })
  const init = await fetch(`${a}/mcp`, {
    method: 'POST',
    headers: headers(),
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'replicas', version: '1' } } })
  })
  t.equal(init.status, 200)
  const session = init.headers.get('mcp-session-id') as string
  const call = await fetch(`${b}/mcp`, {
    method: 'POST',
    headers: headers(session),
    body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } } })
  })
  t.equal(call.status, 200, 'B answers the session opened on A')
  const body = await call.json() as { result: { isError?: boolean, structuredContent: { tickers: string[] } } }
  t.same(body.result.structuredContent.tickers, ['AAPL'])
  t.equal((await fetch(`${b}/mcp`, { method: 'DELETE', headers: headers(session) })).status, 200)
  const after = await fetch(`${a}/mcp`, { method: 'POST', headers: headers(session), body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'ping' }) })
  t.equal(after.status, 404, 'A knows at once that the session is gone')
})
