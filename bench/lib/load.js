// The load: autocannon for a repeated request, and a loop of fresh clients
// (initialize, then tools/call with the session it got) on an undici Pool.
import autocannon from 'autocannon'
import { Pool } from 'undici'
import { initializeMessage, mcpHeaders, parseMessage, sessionOf, toolsCallMessage } from './mcp-client.js'

/**
 * The same request over and over on `connections` keep-alive connections.
 * Each connection sends its own JSON-RPC id: the SDK's transport maps
 * responses back to streams by request id, so requests in flight together in
 * one session must not share one; with no pipelining, one id per connection
 * is enough, and the request stays prebuilt (autocannon's `idReplacement`
 * would rebuild it every time, and sends a wrong Content-Length with the
 * hyperid installed here).
 */
export async function hammer ({ url, headers, message, connections, duration }) {
  const body = (id) => JSON.stringify({ ...message, id })
  let client = 0
  // autocannon's own percentiles are whole milliseconds: record each
  // response's time (hrtime, fractional ms) to see the tail at sub-ms scale.
  let latencies = new Float64Array(1 << 16)
  let count = 0
  const instance = autocannon({
    url,
    method: 'POST',
    headers,
    body: body(0),
    connections,
    duration,
    timeout: 10,
    setupClient: (c) => c.setBody(body(++client))
  })
  instance.on('response', (_client, _status, _bytes, responseTime) => {
    if (count === latencies.length) {
      const grown = new Float64Array(latencies.length * 2)
      grown.set(latencies)
      latencies = grown
    }
    latencies[count++] = responseTime
  })
  const result = await instance
  const sorted = latencies.subarray(0, count).sort()
  return {
    rps: result.requests.total / result.duration,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    p999: percentile(sorted, 99.9),
    ok: result['2xx'],
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts
  }
}

/** The p-th percentile of values sorted ascending (nearest rank). */
export function percentile (sorted, p) {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(p / 100 * sorted.length))]
}

/**
 * Fresh clients, `connections` at a time: each pair is initialize then
 * tools/call in the session the initialize opened. Rate is pairs per second,
 * latency is the pair's.
 */
export async function freshClients ({ url, token, connections, duration }) {
  const { origin, pathname } = new URL(url)
  const pool = new Pool(origin, { connections, pipelining: 1 })
  const latencies = []
  let pairs = 0
  let non2xx = 0
  let errors = 0
  const initBody = JSON.stringify(initializeMessage(1))
  const callBody = JSON.stringify(toolsCallMessage(2))
  const initHeaders = mcpHeaders(token)

  async function send (headers, body) {
    const res = await pool.request({ method: 'POST', path: pathname, headers, body })
    const text = await res.body.text()
    return { status: res.statusCode, headers: res.headers, text }
  }

  const started = performance.now()
  const end = started + duration * 1000
  async function client () {
    while (performance.now() < end) {
      const t0 = performance.now()
      try {
        const init = await send(initHeaders, initBody)
        if (init.status >= 300) { non2xx++; continue }
        const session = sessionOf(init.headers, parseMessage(init.text, String(init.headers['content-type'] ?? ''))?.result)
        const call = await send(mcpHeaders(token, session), callBody)
        if (call.status >= 300) { non2xx++; continue }
        pairs++
        latencies.push(performance.now() - t0)
      } catch {
        errors++
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: connections }, client))
  } finally {
    await pool.destroy()
  }
  const elapsed = (performance.now() - started) / 1000
  latencies.sort((a, b) => a - b)
  return { rps: pairs / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), p999: percentile(latencies, 99.9), ok: pairs, non2xx, errors }
}
