import t from 'tap'
import { createRequire } from 'node:module'
import { LocalIssuer } from '../helpers/issuer.js'
import { FakeAlphaVantage } from '../helpers/fake-alpha-vantage.js'
import { freePort } from '../helpers/mcp-app.js'
import { startServerProcess } from '../helpers/server-process.js'

const require = createRequire(import.meta.url)
const cli = require.resolve('fastify-cli/cli.js')
const appPath = new URL('../../app.ts', import.meta.url).pathname

const headers = (token: string, session?: string): Record<string, string> => ({
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  authorization: `Bearer ${token}`,
  ...(session !== undefined && { 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' })
})

// A fresh process compiles the sources under tap's loader: slow on a busy machine.
t.setTimeout(240_000)

// Operators run `fastify start`: SIGTERM must let in-flight work finish,
// close open SSE streams, refuse new requests and exit within the grace period.
t.test('SIGTERM under fastify start', async t => {
  const issuer = await LocalIssuer.start()
  const upstream = await FakeAlphaVantage.start()
  t.teardown(async () => { await issuer.close(); await upstream.close() })
  const port = await freePort()
  const base = `http://127.0.0.1:${port}`
  const resource = `${base}/mcp`
  issuer.audience = [resource]

  const { child, output, exited } = await startServerProcess(t, [cli, 'start', '-a', '127.0.0.1', '-p', String(port), '-l', 'info', '--close-grace-delay', '8000', appPath], {
    ...process.env,
    ...issuer.scalekitEnv(resource),
    PORT: String(port),
    ALPHA_VANTAGE_API_KEY: 'SHUTDOWN-TEST-KEY',
    ALPHA_VANTAGE_BASE_URL: upstream.url,
    ALPHA_VANTAGE_TIMEOUT_MS: '5000',
    // Not what this test is about, and a loaded CI machine lags its loop for seconds.
    OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0'
  }, `${base}/health`, 150_000)

  const token = await issuer.token()
  const init = await fetch(resource, {
    method: 'POST',
    headers: headers(token),
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'shutdown', version: '1' } } })
  })
  const session = init.headers.get('mcp-session-id') as string
  t.ok(session, 'session opened')

  // An open standalone SSE stream.
  const stream = await fetch(resource, { headers: { ...headers(token, session), accept: 'text/event-stream' } })
  t.equal(stream.headers.get('content-type'), 'text/event-stream')
  const reader = (stream.body as ReadableStream<Uint8Array>).getReader()
  const streamEnded = (async () => { for (;;) if ((await reader.read()).done) return true })()

  // An in-flight tool call, held up by a slow upstream.
  upstream.mode = 'slow'
  upstream.slowMs = 1500
  const inflight = fetch(resource, {
    method: 'POST',
    headers: headers(token, session),
    body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } } })
  })
  while (upstream.hits.length === 0) await new Promise(resolve => setTimeout(resolve, 20))

  const signalledAt = Date.now()
  child.kill('SIGTERM')

  t.equal(await streamEnded, true, 'the open SSE stream is closed cleanly (the body ends, no reset)')
  const answer = await inflight
  t.equal(answer.status, 200, 'the in-flight request finishes')
  const body = await answer.json() as { result: { isError?: boolean, structuredContent: { tickers: string[] } } }
  t.notOk(body.result.isError, 'with its real result')
  t.same(body.result.structuredContent.tickers, ['AAPL'])

  const late = await fetch(`${base}/health`).then(r => r.status, (err: Error) => err.name)
  t.not(late, 200, `a new request after SIGTERM is refused (got ${String(late)})`)

  const [code] = await exited as [number | null]
  t.equal(code, 0, 'the process exits cleanly')
  t.ok(Date.now() - signalledAt < 8000, 'within the grace period')
  t.notMatch(output(), /SHUTDOWN-TEST-KEY/, 'the API key appears in no log line')
  t.notMatch(output(), new RegExp(token.slice(-20).replace(/[-_]/g, '.')), 'nor the bearer token')
})
