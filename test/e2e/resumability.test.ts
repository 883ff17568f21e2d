// MCP transports "Resumability and Redelivery": a client that loses a
// streamed answer resumes it with GET and Last-Event-ID, on any replica.
import t, { type Test } from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { RESOURCE } from '../helpers/build-app.js'
import { LocalIssuer } from '../helpers/issuer.js'
import { buildMcpApp, initSession, listenLocal, mcpHeaders, toolCall, type McpTestApp } from '../helpers/mcp-app.js'
import { RedisServer, sharedRedis } from '../helpers/redis-server.js'

const issuer = await LocalIssuer.start()
t.teardown(() => issuer.close())
const redis = await RedisServer.start(t)
let n = 0

interface Replica { app: McpTestApp, base: string }

/** Two replicas sharing one Redis (or, with `shared: false`, one in-memory replica twice). */
async function replicas (t: Test, shared: boolean): Promise<[Replica, Replica]> {
  const prefix = `resume${++n}:`
  const out: Replica[] = []
  for (let i = 0; i < (shared ? 2 : 1); i++) {
    const app = await buildMcpApp(t, shared ? { redis: await sharedRedis(t, redis, prefix) } : {}, { issuer })
    out.push({ app, base: await listenLocal(app.app) })
  }
  return (shared ? out : [out[0], out[0]]) as [Replica, Replica]
}

/**
 * The SDK client behind a "load balancer" that sends POSTs to A and resumed
 * GETs to B, and that cuts the first streamed tool answer after its first
 * event, as a dropped connection would.
 */
async function clientCutOnA (t: Test, a: Replica, b: Replica): Promise<{ client: Client, resumedOn: string[] }> {
  const resumedOn: string[] = []
  let cut = false
  const lb: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input))
    const headers = new Headers(init?.headers)
    const lastEventId = headers.get('last-event-id')
    const target = lastEventId !== null ? b : a
    if (lastEventId !== null) resumedOn.push(target.base)
    const res = await fetch(`${target.base}${url.pathname}`, init)
    const isToolCall = typeof init?.body === 'string' && init.body.includes('"tools/call"')
    if (cut || !isToolCall || res.body === null) return res
    cut = true
    // Pass the stream through until the progress event, then drop the connection.
    const reader = res.body.getReader()
    let seen = ''
    const body = new ReadableStream<Uint8Array>({
      async pull (controller) {
        const { value, done } = await reader.read()
        if (done) return controller.close()
        controller.enqueue(value)
        seen += new TextDecoder().decode(value)
        if (seen.includes('notifications/progress')) {
          await reader.cancel()
          controller.error(new TypeError('terminated'))
        }
      }
    })
    return new Response(body, { status: res.status, headers: res.headers })
  }
  const transport = new StreamableHTTPClientTransport(new URL(RESOURCE), {
    requestInit: { headers: { Authorization: `Bearer ${a.app.token}` } },
    fetch: lb,
    reconnectionOptions: { initialReconnectionDelay: 50, maxReconnectionDelay: 200, reconnectionDelayGrowFactor: 1.5, maxRetries: 10 }
  })
  const client = new Client({ name: 'tap-resume', version: '1.0.0' })
  t.teardown(() => client.close())
  await client.connect(transport)
  return { client, resumedOn }
}

for (const shared of [true, false]) {
  t.test(shared ? 'a client that loses its stream on A resumes on B and gets its tool result' : 'in memory: a client resumes on the same server', async t => {
    const [a, b] = await replicas(t, shared)
    const { client, resumedOn } = await clientCutOnA(t, a, b)
    const progress: number[] = []
    const call = client.callTool({ name: 'report_then_hold', arguments: {} }, undefined, { onprogress: p => { progress.push(p.progress) } })
    await a.app.probe.holding
    // Wait for the resume to be in place, then let the tool finish on A.
    while (resumedOn.length === 0) await new Promise(resolve => setTimeout(resolve, 10))
    await new Promise(resolve => setTimeout(resolve, 100))
    a.app.probe.release()
    const result = await call
    t.same(result.content, [{ type: 'text', text: 'finished; cancelled: false' }], 'the result arrives through the resumed stream; the call was not cancelled')
    t.same(progress, [1, 2], 'the progress before the cut once, and the progress sent after it, replayed')
    t.equal(resumedOn[0], b.base, 'resumed on B')
  })
}

t.test('Last-Event-ID replays one stream only, after the given event; a foreign id is 400', async t => {
  const [a, b] = await replicas(t, true)
  const session = await initSession(a.app.app, a.app.token)
  const headers = mcpHeaders(a.app.token, session, '2025-06-18')
  // Two streamed answers in the same session.
  const bodies: string[] = []
  for (const id of [1, 2]) {
    const res = await fetch(`${a.base}/mcp`, { method: 'POST', headers, body: JSON.stringify(toolCall('progress', { steps: 2 }, id, { progressToken: id })) })
    bodies.push(await res.text())
  }
  const ids = bodies.map(body => [...body.matchAll(/^id: (\S+)$/gm)].map(m => m[1] as string))
  t.equal(ids[0]?.length, 4, 'priming event, two progress events, the response: each with an id')
  t.equal(new Set([...(ids[0] as string[]), ...(ids[1] as string[])]).size, 8, 'ids are unique within the session')
  const firstStream = (ids[0]?.[0] as string).split('-')[0] as string
  t.ok(ids[0]?.every(id => id.startsWith(`${firstStream}-`)), 'and name their stream')

  const resumed = await fetch(`${b.base}/mcp`, { headers: { ...headers, accept: 'text/event-stream', 'last-event-id': ids[0]?.[1] as string } })
  t.equal(resumed.status, 200)
  const replay = await resumed.text()
  const replayedIds = [...replay.matchAll(/^id: (\S+)$/gm)].map(m => m[1])
  t.same(replayedIds, ids[0]?.slice(2), "the rest of that stream, ending with its response; nothing of the other stream's")
  t.match(replay, /"id":1,"result"/)
  t.notMatch(replay, /"id":2/)

  const foreign = await fetch(`${b.base}/mcp`, { headers: { ...headers, accept: 'text/event-stream', 'last-event-id': 'not an id' } })
  t.equal(foreign.status, 400)
  const stranger = await fetch(`${b.base}/mcp`, { headers: { ...mcpHeaders(await issuer.token({ claims: { sub: 'mallory' } }), session, '2025-06-18'), accept: 'text/event-stream', 'last-event-id': ids[0]?.[1] as string } })
  t.equal(stranger.status, 404, "another owner cannot replay the session's events")
})

t.test('a notifications/cancelled landing on B cancels the call running on A', async t => {
  const [a, b] = await replicas(t, true)
  const session = await initSession(a.app.app, a.app.token)
  const headers = mcpHeaders(a.app.token, session, '2025-06-18')
  const call = fetch(`${a.base}/mcp`, { method: 'POST', headers, body: JSON.stringify(toolCall('wait_for_cancel', {}, 'c1')) })
  const signal = await a.app.probe.started
  const cancel = await fetch(`${b.base}/mcp`, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'c1' } }) })
  t.equal(cancel.status, 202)
  await a.app.probe.aborted
  t.equal(signal.aborted, true)
  t.equal((await call).status, 200)
})

t.test('a resumed stream still following at shutdown ends with the server', async t => {
  const [a] = await replicas(t, false)
  const session = await initSession(a.app.app, a.app.token)
  const headers = mcpHeaders(a.app.token, session, '2025-06-18')
  const controller = new AbortController()
  const res = await fetch(`${a.base}/mcp`, { method: 'POST', headers, body: JSON.stringify(toolCall('report_then_hold', {}, 1, { progressToken: 1 })), signal: controller.signal })
  const reader = (res.body as ReadableStream<Uint8Array>).getReader()
  let seen = ''
  while (!seen.includes('notifications/progress')) seen += new TextDecoder().decode((await reader.read()).value)
  controller.abort()
  const lastId = [...seen.matchAll(/^id: (\S+)$/gm)].at(-1)?.[1] as string
  const resumed = await fetch(`${a.base}/mcp`, { headers: { ...headers, accept: 'text/event-stream', 'last-event-id': lastId } })
  t.equal(resumed.status, 200)
  const body = resumed.text()
  await a.app.app.close()
  t.equal(await body, '', 'nothing was left to replay, and the stream ended at shutdown')
})
