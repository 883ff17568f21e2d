import t from 'tap'
import { connect } from 'node:net'
import { options, timeoutOptions } from '../app.js'
import { buildApp, initializeBody } from './helpers/build-app.js'
import { listenLocal } from './helpers/mcp-app.js'

t.test('server options time requests by default (Fastify alone would wait for ever)', async t => {
  t.equal(options.requestTimeout, 30_000)
  t.match(options.http, { requestTimeout: 30_000, headersTimeout: 10_000, connectionsCheckingInterval: 1000 })
})

/** Opens a connection, writes `head` and then nothing more; resolves with what the server sent and when it closed. */
async function stall (base: string, head: string, waitMs: number): Promise<{ answer: string, closedAfterMs: number | undefined }> {
  const { hostname, port } = new URL(base)
  return await new Promise((resolve, reject) => {
    const started = Date.now()
    const socket = connect(Number(port), hostname)
    const chunks: Buffer[] = []
    const giveUp = setTimeout(() => {
      socket.destroy()
      resolve({ answer: Buffer.concat(chunks).toString('latin1'), closedAfterMs: undefined })
    }, waitMs)
    socket.on('data', chunk => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('close', () => {
      clearTimeout(giveUp)
      resolve({ answer: Buffer.concat(chunks).toString('latin1'), closedAfterMs: Date.now() - started })
    })
    // write, not end: a half-closed socket would end the exchange by itself.
    socket.write(head)
  })
}

t.test('a slow client is cut off at REQUEST_TIMEOUT_MS / HEADERS_TIMEOUT_MS, on a real connection', async t => {
  const ctx = await buildApp(t, {}, { server: timeoutOptions({ requestTimeoutMs: 1000, headersTimeoutMs: 1000 }) })
  const base = await listenLocal(ctx.app)
  const { host } = new URL(base)
  const body = JSON.stringify(initializeBody())

  t.test('a body that declares 100,000 bytes and sends 10', async t => {
    const head = [
      'POST /mcp HTTP/1.1', `Host: ${host}`, `Authorization: Bearer ${ctx.token}`, 'Content-Type: application/json',
      'Accept: application/json, text/event-stream', 'Content-Length: 100000', '', body.slice(0, 10)
    ].join('\r\n')
    const { answer, closedAfterMs } = await stall(base, head, 6000)
    t.ok(closedAfterMs !== undefined, 'the server closed the connection')
    t.ok((closedAfterMs as number) >= 900 && (closedAfterMs as number) < 3500, `after ${closedAfterMs} ms (timeout 1000 ms, checked every second)`)
    t.match(answer, /^HTTP\/1\.1 408 /, '408 Request Timeout')
  })

  t.test('headers that never end', async t => {
    const { answer, closedAfterMs } = await stall(base, `POST /mcp HTTP/1.1\r\nHost: ${host}\r\nX-Slow: a`, 6000)
    t.ok(closedAfterMs !== undefined && closedAfterMs < 3500, `closed after ${closedAfterMs} ms`)
    t.match(answer, /^HTTP\/1\.1 408 /)
  })

  t.test('the server keeps serving', async t => {
    const res = await fetch(`${base}/mcp`, { method: 'POST', headers: { authorization: `Bearer ${ctx.token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body })
    t.equal(res.status, 200)
  })
})
