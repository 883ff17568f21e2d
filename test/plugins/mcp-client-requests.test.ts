// Requests from server to client over the wire, hostile answers included
// (MCP client "Elicitation", "Sampling"; transports "Sending Messages to the
// Server"), SSE polling (2025-11-25), session notifications and logging, on
// one replica in memory and on two sharing a real redis-server.
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import { LocalIssuer } from '../helpers/issuer.js'
import { MCP_HEADERS } from '../helpers/build-app.js'
import { buildMcpApp, listenLocal, toolCall, type McpTestApp } from '../helpers/mcp-app.js'
import { RedisServer, sharedRedis, until } from '../helpers/redis-server.js'
import { ClientCapabilityError, ClientRequestError, type ElicitResult } from '../../plugins/mcp.js'
import type { SharedRedis } from '../../plugins/redis.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'

const issuer = await LocalIssuer.start()
t.teardown(() => issuer.close())
const redis = await RedisServer.start(t)
let n = 0

/** What the test tools ended with, in order. */
const outcomes: string[] = []
const LATEST = '2025-11-25'

function outcomeOf (err: unknown): string {
  if (err instanceof ClientRequestError) return `${err.reason}${err.code !== undefined ? ` ${err.code}` : ''}: ${err.message}`
  if (err instanceof ClientCapabilityError) return `capability: ${err.message}`
  return `other: ${(err as Error).message}`
}

/** A client's answer, recorded and handed back as the tool's text. */
function recorded (value: unknown): CallToolResult {
  outcomes.push(`answer: ${JSON.stringify(value)}`)
  return { content: [{ type: 'text', text: JSON.stringify(value) }] }
}

/** A failed request to the client, recorded and reported as a tool error. */
function failed (err: unknown): CallToolResult {
  outcomes.push(outcomeOf(err))
  return { content: [{ type: 'text', text: outcomeOf(err) }], isError: true }
}

function tools (app: FastifyInstance): void {
  app.mcpTool({
    name: 'ask',
    description: 'Elicits once, with an optional timeout',
    inputSchema: z.object({ timeoutMs: z.number().int().optional(), url: z.boolean().optional() })
  }, async ({ timeoutMs, url }, ctx) => {
    try {
      const params = url === true
        ? { mode: 'url' as const, message: 'Sign in', url: 'https://example.com/login', elicitationId: 'e-1' }
        : { message: 'Name?', requestedSchema: { type: 'object' as const, properties: { name: { type: 'string' as const } } } }
      const answer: ElicitResult = await ctx.elicit(params, timeoutMs === undefined ? undefined : { timeoutMs })
      return recorded(answer)
    } catch (err) {
      return failed(err)
    }
  })
  app.mcpTool({
    name: 'sample',
    description: 'Samples once (with tools when asked)',
    inputSchema: z.object({ tools: z.boolean().optional(), timeoutMs: z.number().int().optional(), context: z.enum(['none', 'thisServer']).optional() })
  }, async ({ tools, timeoutMs, context }, ctx) => {
    try {
      const answer = await ctx.createMessage({
        messages: [{ role: 'user', content: { type: 'text', text: 'hi' } }],
        maxTokens: 10,
        ...(context !== undefined && { includeContext: context }),
        ...(tools === true && { tools: [{ name: 'lookup', inputSchema: { type: 'object' } }] })
      }, { timeoutMs: timeoutMs ?? 5000 })
      return recorded(answer)
    } catch (err) {
      return failed(err)
    }
  })
  app.mcpTool({
    name: 'late_ask',
    description: 'Returns at once, then elicits from work it left running',
    inputSchema: z.object({})
  }, (_args, ctx) => {
    setImmediate(() => { ctx.elicit({ message: 'too late', requestedSchema: { type: 'object', properties: {} } }).catch((err: unknown) => outcomes.push(outcomeOf(err))) })
    return { content: [{ type: 'text', text: 'returned' }] }
  })
  app.mcpTool({
    name: 'caps',
    description: 'What the client declared',
    inputSchema: z.object({})
  }, (_args, ctx) => ({ content: [{ type: 'text', text: JSON.stringify(ctx.clientCapabilities ?? null) }] }))
  app.mcpTool({
    name: 'close_then_ask',
    description: 'Closes its SSE stream, then elicits: the request waits in the event store for the client\'s GET',
    inputSchema: z.object({})
  }, async (_args, ctx) => {
    ctx.closeSseStream()
    const answer = await ctx.elicit({ message: 'Still there?', requestedSchema: { type: 'object', properties: {} } })
    return { content: [{ type: 'text', text: answer.action }] }
  })
  app.mcpTool({
    name: 'reconnect',
    description: 'Closes its SSE stream, logs, then returns (SSE polling, SEP-1699)',
    inputSchema: z.object({})
  }, async (_args, ctx) => {
    ctx.closeSseStream()
    ctx.closeSseStream()
    await new Promise(resolve => setTimeout(resolve, 50))
    ctx.mcpLog.warning('after the close')
    return { content: [{ type: 'text', text: 'reconnected' }] }
  })
  app.mcpTool({
    name: 'media',
    description: 'Returns every content type of 2025-11-25',
    inputSchema: z.object({}),
    outputSchema: z.object({ kinds: z.array(z.string()) })
  }, () => ({
    content: [
      { type: 'text', text: 'four kinds' },
      { type: 'image', data: 'iVBORw0KGgo=', mimeType: 'image/png', annotations: { audience: ['user'], priority: 0.5 } },
      { type: 'audio', data: 'UklGRg==', mimeType: 'audio/wav' },
      { type: 'resource', resource: { uri: 'news://methodology', mimeType: 'text/markdown', text: '# How' } },
      { type: 'resource', resource: { uri: 'news://blob', mimeType: 'application/octet-stream', blob: 'AAEC' } },
      { type: 'resource_link', uri: 'news://sentiment/AAPL', name: 'aapl', title: 'AAPL sentiment', mimeType: 'application/json', icons: [{ src: 'https://example.com/i.png' }] }
    ],
    structuredContent: { kinds: ['text', 'image', 'audio', 'resource', 'resource_link'] }
  }))
}

interface Replica { app: McpTestApp, base: string, link?: SharedRedis }

async function replicas (t: Test, shared: boolean, options = {}): Promise<[Replica, Replica]> {
  const prefix = `clientwire${++n}:`
  const out: Replica[] = []
  for (let i = 0; i < (shared ? 2 : 1); i++) {
    const link = shared ? await sharedRedis(t, redis, prefix) : undefined
    const app = await buildMcpApp(t, { ...options, ...(link !== undefined && { redis: link }) }, { issuer, tools })
    out.push({ app, base: await listenLocal(app.app), ...(link !== undefined && { link }) })
  }
  return (shared ? out : [out[0], out[0]]) as [Replica, Replica]
}

function headers (token: string, session?: string, extra: Record<string, string> = {}): Record<string, string> {
  return { ...MCP_HEADERS, authorization: `Bearer ${token}`, ...(session !== undefined && { 'mcp-session-id': session }), ...extra }
}

async function post (r: Replica, body: unknown, session?: string, extra: Record<string, string> = {}): Promise<Response> {
  return await fetch(`${r.base}/mcp`, { method: 'POST', headers: headers(r.app.token, session, extra), body: JSON.stringify(body) })
}

async function open (r: Replica, capabilities: Record<string, unknown>, protocolVersion = LATEST): Promise<string> {
  const res = await post(r, { jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion, capabilities, clientInfo: { name: 'tap', version: '1' } } })
  await res.text()
  return res.headers.get('mcp-session-id') as string
}

interface SseEvent { id?: string, retry?: number, data: string }

/** Reads an SSE body event by event. */
class SseReader {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>
  readonly #decoder = new TextDecoder()
  #buffer = ''

  constructor (res: Response) {
    this.#reader = (res.body as ReadableStream<Uint8Array>).getReader()
  }

  /** The next event (comments skipped), or undefined when the stream ends. */
  async next (): Promise<SseEvent | undefined> {
    for (;;) {
      const end = this.#buffer.indexOf('\n\n')
      if (end >= 0) {
        const block = this.#buffer.slice(0, end)
        this.#buffer = this.#buffer.slice(end + 2)
        const event: SseEvent = { data: '' }
        let fields = 0
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue
          fields++
          if (line.startsWith('id: ')) event.id = line.slice(4)
          else if (line.startsWith('retry: ')) event.retry = Number(line.slice(7))
          else if (line.startsWith('data: ')) event.data += line.slice(6)
        }
        if (fields > 0) return event
        continue
      }
      const { value, done } = await this.#reader.read()
      if (done) return undefined
      this.#buffer += this.#decoder.decode(value, { stream: true })
    }
  }

  /** The next event that carries a message, parsed. */
  async message (): Promise<Record<string, any>> {
    for (;;) {
      const event = await this.next()
      if (event === undefined) throw new Error('the stream ended')
      if (event.data !== '') return JSON.parse(event.data)
    }
  }

  async cancel (): Promise<void> {
    await this.#reader.cancel()
  }
}

/** Starts a tool call whose answer streams; returns its reader and the request the tool sent the client. */
async function callUntilRequest (r: Replica, session: string, name: string, args: Record<string, unknown>, id: number | string = 1): Promise<{ sse: SseReader, request: Record<string, any> }> {
  const res = await post(r, toolCall(name, args, id), session)
  const sse = new SseReader(res)
  return { sse, request: await sse.message() }
}

async function answer (r: Replica, session: string, body: unknown): Promise<{ status: number, body: string }> {
  const res = await post(r, body, session)
  return { status: res.status, body: await res.text() }
}

const UNKNOWN = (id: unknown): Record<string, unknown> => ({ jsonrpc: '2.0', id: null, error: { code: -32600, message: `Invalid Request: this session has no pending request with id ${JSON.stringify(id)}` } })

for (const shared of [false, true]) {
  const mode = shared ? 'two replicas sharing Redis' : 'one replica in memory'

  t.test(`an elicitation and its answer on the wire: ${mode}`, async t => {
    const [a, b] = await replicas(t, shared)
    const session = await open(a, { elicitation: { form: {}, url: {} } })
    const other = await open(a, { elicitation: {} })

    t.test('the request: a server-chosen id, on the call\'s SSE stream, with an event id', async t => {
      outcomes.length = 0
      const { sse, request } = await callUntilRequest(a, session, 'ask', {})
      t.match(request, { jsonrpc: '2.0', method: 'elicitation/create', params: { message: 'Name?', requestedSchema: { type: 'object' } } })
      t.match(request.id, /^s-[A-Za-z0-9_-]{16}$/)

      // Hostile: an id never sent, a number, the right id from another session: 400, and the request still waits.
      t.same(await answer(b, session, { jsonrpc: '2.0', id: 's-never-sent', result: { action: 'cancel' } }), { status: 400, body: JSON.stringify(UNKNOWN('s-never-sent')) })
      t.same(await answer(b, session, { jsonrpc: '2.0', id: 17, result: { action: 'cancel' } }), { status: 400, body: JSON.stringify(UNKNOWN(17)) })
      t.same(await answer(b, other, { jsonrpc: '2.0', id: request.id, result: { action: 'cancel' } }), { status: 400, body: JSON.stringify(UNKNOWN(request.id)) }, 'another session: the same words (no oracle)')
      t.same(outcomes, [], 'the tool still waits')

      t.same(await answer(b, session, { jsonrpc: '2.0', id: request.id, result: { action: 'accept', content: { name: 'Ada' } } }), { status: 202, body: '' })
      t.match(await sse.message(), { id: 1, result: { content: [{ text: '{"action":"accept","content":{"name":"Ada"}}' }] } })
      t.same(await answer(b, session, { jsonrpc: '2.0', id: request.id, result: { action: 'accept', content: { name: 'Eve' } } }), { status: 400, body: JSON.stringify(UNKNOWN(request.id)) }, 'a second answer is refused')
      t.same(outcomes, ['answer: {"action":"accept","content":{"name":"Ada"}}'])
    })

    t.test('malformed answers: 400 with -32602, and the tool learns at once', async t => {
      const cases: Array<[string, unknown, RegExp]> = [
        ['an unknown action', { result: { action: 'maybe' } }, /action accept, decline or cancel/],
        ['nested content', { result: { action: 'accept', content: { name: { first: 'Ada' } } } }, /flat object/],
        ['accept without content (form mode)', { result: { action: 'accept' } }, /needs content/],
        ['a result that is no object', { result: 'yes' }, /action accept, decline or cancel/],
        ['an error without a code', { error: { message: 'no' } }, /integer code and a string message/]
      ]
      for (const [what, body, message] of cases) {
        outcomes.length = 0
        const { sse, request } = await callUntilRequest(a, session, 'ask', {})
        const res = await answer(b, session, { jsonrpc: '2.0', id: request.id, ...body as object })
        t.equal(res.status, 400, what)
        const error = JSON.parse(res.body)
        t.equal(error.id, null)
        t.equal(error.error.code, -32602)
        t.match(error.error.message, message)
        t.match(await sse.message(), { result: { isError: true } })
        t.match(outcomes, [/^invalid-result: The client's answer was malformed: /], what)
      }
    })

    t.test('the client\'s JSON-RPC error is accepted (202) and reaches the tool with its code', async t => {
      outcomes.length = 0
      const { sse, request } = await callUntilRequest(a, session, 'ask', {})
      t.same(await answer(b, session, { jsonrpc: '2.0', id: request.id, error: { code: -1, message: 'User rejected' } }), { status: 202, body: '' })
      await sse.message()
      t.same(outcomes, ['client-error -1: The client refused the request: User rejected'])
    })

    t.test('URL mode: the request carries mode url, and an accept without content is fine (answered on the replica that waits)', async t => {
      outcomes.length = 0
      const { sse, request } = await callUntilRequest(a, session, 'ask', { url: true })
      t.match(request.params, { mode: 'url', url: 'https://example.com/login', elicitationId: 'e-1' })
      t.same(await answer(a, session, { jsonrpc: '2.0', id: request.id, result: { action: 'accept' } }), { status: 202, body: '' })
      await sse.message()
      t.same(outcomes, ['answer: {"action":"accept"}'])
    })

    t.test('a timeout releases the tool, and the client is told (notifications/cancelled)', async t => {
      outcomes.length = 0
      const { sse, request } = await callUntilRequest(a, session, 'ask', { timeoutMs: 100 })
      const cancelled = await sse.message()
      t.same(cancelled, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: request.id, reason: 'The client did not answer elicitation/create within 100 ms.' } })
      t.match(await sse.message(), { id: 1, result: { isError: true } })
      t.same(outcomes, ['timeout: The client did not answer elicitation/create within 100 ms.'])
      t.same(await answer(b, session, { jsonrpc: '2.0', id: request.id, result: { action: 'cancel' } }), { status: 400, body: JSON.stringify(UNKNOWN(request.id)) }, 'too late')
    })

    t.test('the call cancelled by the client releases the tool', async t => {
      outcomes.length = 0
      const { sse, request } = await callUntilRequest(a, session, 'ask', {}, 'call-9')
      const res = await post(b, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'call-9' } }, session)
      t.equal(res.status, 202)
      await until('the tool is released', () => outcomes.length === 1)
      t.same(outcomes, ['cancelled: The call was cancelled before the client answered elicitation/create.'])
      t.same(await sse.message(), { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: request.id, reason: 'The call was cancelled before the client answered elicitation/create.' } }, 'the client is told its request is void')
      t.same(await answer(b, session, { jsonrpc: '2.0', id: request.id, result: { action: 'cancel' } }), { status: 400, body: JSON.stringify(UNKNOWN(request.id)) })
      await sse.cancel()
    })

    t.test('the session\'s end releases the tool', async t => {
      outcomes.length = 0
      const doomed = await open(a, { elicitation: {} })
      const { request } = await callUntilRequest(a, doomed, 'ask', {})
      const res = await fetch(`${b.base}/mcp`, { method: 'DELETE', headers: headers(a.app.token, doomed) })
      t.equal(res.status, 200)
      await until('the tool is released', () => outcomes.length === 1)
      t.same(outcomes, ['session-ended: The session ended before the client answered elicitation/create.'])
      t.equal((await answer(b, session, { jsonrpc: '2.0', id: request.id, result: { action: 'cancel' } })).status, 400)
    })

    t.test('sampling: validated against the sampling result shape (with tools when the request had tools)', async t => {
      const sampler = await open(a, { sampling: { tools: {} } })
      outcomes.length = 0
      let { sse, request } = await callUntilRequest(a, sampler, 'sample', {})
      t.match(request, { method: 'sampling/createMessage', params: { maxTokens: 10 } })
      t.equal((await answer(b, sampler, { jsonrpc: '2.0', id: request.id, result: { role: 'assistant', content: { type: 'text', text: 'x' } } })).status, 400, 'no model')
      await sse.message()
      ;({ sse, request } = await callUntilRequest(a, sampler, 'sample', { tools: true }))
      t.match(request.params, { tools: [{ name: 'lookup' }] })
      const result = { role: 'assistant', content: [{ type: 'tool_use', id: 'u1', name: 'lookup', input: {} }], model: 'm', stopReason: 'toolUse' }
      t.equal((await answer(b, sampler, { jsonrpc: '2.0', id: request.id, result })).status, 202)
      await sse.message()
      t.match(outcomes, [/^invalid-result: .*a sampling result needs role, content and model/, `answer: ${JSON.stringify(result)}`])
    })

    t.test('requests a tool cannot make: after its answer, or with a timeout that is no positive integer', async t => {
      outcomes.length = 0
      const late = await post(a, toolCall('late_ask', {}), session)
      t.match(await late.json(), { result: { content: [{ text: 'returned' }] } })
      await until('the late request is refused', () => outcomes.length === 1)
      const zero = await post(a, toolCall('ask', { timeoutMs: 0 }), session)
      t.match(await zero.json(), { result: { isError: true } })
      t.same(outcomes, ['cancelled: The call ended before elicitation/create could be sent.', 'other: mcp: timeoutMs must be a positive integer'])
    })

    t.test('capabilities the client did not declare: nothing is sent', async t => {
      const formOnly = await open(a, { elicitation: {} })
      outcomes.length = 0
      for (const [name, args] of [['ask', { url: true }], ['sample', {}]] as const) {
        const res = await post(a, toolCall(name, args), formOnly)
        t.match(res.headers.get('content-type'), /^application\/json/, 'no stream was opened')
        t.match(await res.json(), { result: { isError: true } })
      }
      const sampler = await open(a, { sampling: {} })
      await (await post(a, toolCall('sample', { tools: true }), sampler)).text()
      await (await post(a, toolCall('sample', { context: 'thisServer' }), sampler)).text()
      t.same(outcomes, [
        'capability: The client does not support URL-mode elicitation; ask the user directly in your answer instead.',
        'capability: The client does not support sampling; ask the user directly in your answer instead.',
        'capability: The client does not support tool use in sampling; ask the user directly in your answer instead.',
        'capability: The client does not support context inclusion in sampling; ask the user directly in your answer instead.'
      ])
      // includeContext "none" needs nothing beyond sampling.
      const { sse, request } = await callUntilRequest(a, sampler, 'sample', { context: 'none' })
      t.equal(request.params.includeContext, 'none')
      t.equal((await answer(b, sampler, { jsonrpc: '2.0', id: request.id, result: { role: 'assistant', content: { type: 'text', text: 'ok' }, model: 'm' } })).status, 202)
      await sse.message()
    })
  })

  t.test(`session notifications reach the GET stream on whichever replica holds it: ${mode}`, async t => {
    const [a, b] = await replicas(t, shared)
    const s1 = await open(a, {})
    const s2 = await open(a, {})
    const streams: SseReader[] = []
    for (const s of [s1, s2]) {
      const res = await fetch(`${b.base}/mcp`, { headers: { accept: 'text/event-stream', authorization: `Bearer ${a.app.token}`, 'mcp-session-id': s } })
      t.equal(res.status, 200)
      streams.push(new SseReader(res))
    }
    await until('B holds both streams', () => b.app.app.mcpSessions.get(s1)?.stream !== undefined && b.app.app.mcpSessions.get(s2)?.stream !== undefined)
    const [g1, g2] = streams as [SseReader, SseReader]
    a.app.app.mcpNotify(s1, { method: 'notifications/resources/updated', params: { uri: 'news://x' } })
    t.same(await g1.message(), { jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri: 'news://x' } })
    b.app.app.mcpNotify(s1, { method: 'notifications/resources/updated', params: { uri: 'news://y' } })
    t.same(await g1.message(), { jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri: 'news://y' } }, 'from the replica that holds the stream')
    a.app.app.mcpBroadcast({ method: 'notifications/tools/list_changed' })
    t.same(await g1.message(), { jsonrpc: '2.0', method: 'notifications/tools/list_changed' })
    t.same(await g2.message(), { jsonrpc: '2.0', method: 'notifications/tools/list_changed' })
    // Logging outside a call: the session's level (info by default) filters, where the stream is.
    a.app.app.mcpLog(s2, 'debug', 'held back')
    a.app.app.mcpLog(s2, 'notice', { quota: 'near' }, 'quota')
    t.same(await g2.message(), { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'notice', logger: 'quota', data: { quota: 'near' } } })
    // A session without a stream, or none at all: dropped quietly.
    a.app.app.mcpNotify('no-such-session', { method: 'notifications/x' })
    t.throws(() => a.app.app.mcpNotify(s1, { method: 'tools/list' }), { name: 'TypeError', message: 'mcp: a notification needs a method starting with notifications/' })
    t.throws(() => a.app.app.mcpBroadcast({ method: 'notifications/x', params: [] as unknown as Record<string, unknown> }), { name: 'TypeError', message: "mcp: a notification's params must be an object" })
    t.throws(() => a.app.app.mcpLog(s1, 'loud' as 'info', 'x'), { name: 'TypeError', message: /^mcp: "loud" is not an MCP logging level \(debug, info/ })
    await g1.cancel()
    await g2.cancel()
  })

  t.test(`SSE polling (SEP-1699): the server closes the POST stream after the priming event; GET with Last-Event-ID fetches the rest: ${mode}`, async t => {
    const [a, b] = await replicas(t, shared, { sseRetryMs: 250 })
    const session = await open(a, {})
    await (await post(a, { jsonrpc: '2.0', id: 'l', method: 'logging/setLevel', params: { level: 'warning' } }, session)).text()
    // The protocol version header of the conformance scenario (2025-03-26) on a 2025-11-25 session: the session's version counts.
    const res = await post(a, toolCall('reconnect', {}, 1), session, { 'mcp-protocol-version': '2025-03-26' })
    t.match(res.headers.get('content-type'), /^text\/event-stream/)
    const sse = new SseReader(res)
    const priming = await sse.next() as SseEvent
    t.match(priming, { id: /-0$/, retry: 250, data: '' }, 'the priming event: an id, retry, no data')
    t.equal(await sse.next(), undefined, 'then the stream ends, before the response')
    const get = await fetch(`${b.base}/mcp`, { headers: { accept: 'text/event-stream', authorization: `Bearer ${a.app.token}`, 'mcp-session-id': session, 'last-event-id': priming.id as string } })
    t.equal(get.status, 200)
    const resumed = new SseReader(get)
    t.match(await resumed.next(), { id: /-1$/, data: /"notifications\/message".*"after the close"/ })
    t.match(await resumed.next(), { id: /-2$/, data: /"id":1,"result":\{"content":\[\{"type":"text","text":"reconnected"/ })
    t.equal(await resumed.next(), undefined, 'the resumed stream ends with the response')

    // A request to the client made after the close reaches it through the resumed stream, and its answer the tool.
    const asker = await open(a, { elicitation: {} })
    const closed = new SseReader(await post(a, toolCall('close_then_ask', {}, 2), asker))
    const start = await closed.next() as SseEvent
    t.equal(await closed.next(), undefined)
    const polled = new SseReader(await fetch(`${b.base}/mcp`, { headers: { accept: 'text/event-stream', authorization: `Bearer ${a.app.token}`, 'mcp-session-id': asker, 'last-event-id': start.id as string } }))
    const request = await polled.message()
    t.match(request, { method: 'elicitation/create', params: { message: 'Still there?' } })
    t.equal((await answer(b, asker, { jsonrpc: '2.0', id: request.id, result: { action: 'decline' } })).status, 202)
    t.match(await polled.message(), { id: 2, result: { content: [{ text: 'decline' }] } })
  })
}

t.test('shared storage failing on the replica: the request is not sent, an answer is 503, a level is -32603; the replica keeps serving', async t => {
  const [a, b] = await replicas(t, true)
  const session = await open(a, { elicitation: {} })
  await (await post(a, toolCall('caps', {}), session)).text()
  const link = a.link as SharedRedis
  link.client.disconnect()
  await until('A\'s command link is down', () => !link.available)
  outcomes.length = 0
  const res = await post(a, toolCall('ask', {}), session)
  t.match(await res.json(), { result: { isError: true } })
  t.same(outcomes, ['unavailable: The request to the client could not be sent: shared storage is unavailable; try again shortly.'])
  const stray = await post(a, { jsonrpc: '2.0', id: 's-abc', result: { action: 'cancel' } }, session)
  t.equal(stray.status, 503)
  t.equal(stray.headers.get('retry-after'), '5')
  t.same(await stray.json(), { jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Service Unavailable: shared storage is unavailable; send the answer again shortly' } })
  const level = await post(a, { jsonrpc: '2.0', id: 8, method: 'logging/setLevel', params: { level: 'debug' } }, session)
  t.same(await level.json(), { jsonrpc: '2.0', id: 8, error: { code: -32603, message: 'Internal error: the level could not be stored; retry shortly' } })
  const ping = await post(a, { jsonrpc: '2.0', id: 9, method: 'ping' }, session)
  t.same(await ping.json(), { jsonrpc: '2.0', id: 9, result: {} }, 'still serving')
  t.equal((await post(b, { jsonrpc: '2.0', id: 10, method: 'ping' }, session)).status, 200, 'and B is unaffected')
})

t.test('clients before 2025-11-25: no retry field, and the stream is not closed early', async t => {
  const [a] = await replicas(t, false)
  const session = await open(a, {}, '2025-06-18')
  const res = await post(a, toolCall('reconnect', {}, 1), session)
  // The stream stays open: the warning (above the default level, info) and the response follow on it.
  const sse = new SseReader(res)
  const priming = await sse.next() as SseEvent
  t.equal(priming.retry, undefined)
  t.equal(priming.data, '')
  t.match(await sse.message(), { method: 'notifications/message', params: { level: 'warning', data: 'after the close' } })
  t.match(await sse.message(), { id: 1, result: { content: [{ text: 'reconnected' }] } })
})

t.test('stateless: no requests to the client (no session to answer in), logging/setLevel answers {}', async t => {
  const [a] = await replicas(t, false, { stateless: true })
  const caps = await post(a, toolCall('caps', {}))
  t.match(await caps.json(), { result: { content: [{ text: 'null' }] } }, 'no session, no capabilities')
  outcomes.length = 0
  const res = await post(a, toolCall('ask', {}))
  t.match(await res.json(), { result: { isError: true } })
  t.same(outcomes, ['capability: The client does not support elicitation; ask the user directly in your answer instead.'])
  const level = await post(a, { jsonrpc: '2.0', id: 2, method: 'logging/setLevel', params: { level: 'debug' } })
  t.same(await level.json(), { jsonrpc: '2.0', id: 2, result: {} })
  const stray = await post(a, { jsonrpc: '2.0', id: 's-x', result: {} })
  t.equal(stray.status, 400)
  t.same(await stray.json(), { jsonrpc: '2.0', id: null, error: { code: -32600, message: 'Invalid Request: this server sends requests only within a session; no request awaits this response' } })
})

t.test('logging/setLevel: only the eight RFC 5424 names (-32602 otherwise)', async t => {
  const [a] = await replicas(t, false)
  const session = await open(a, {})
  for (const params of [{}, { level: 'verbose' }, { level: 'DEBUG' }, { level: 3 }, { level: 'x'.repeat(10_000) }]) {
    const res = await post(a, { jsonrpc: '2.0', id: 3, method: 'logging/setLevel', params }, session)
    t.same(await res.json(), { jsonrpc: '2.0', id: 3, error: { code: -32602, message: 'Invalid params: level must be one of debug, info, notice, warning, error, critical, alert, emergency' } })
  }
  const ok = await post(a, { jsonrpc: '2.0', id: 4, method: 'logging/setLevel', params: { level: 'emergency' } }, session)
  t.same(await ok.json(), { jsonrpc: '2.0', id: 4, result: {} })
  t.equal(a.app.app.mcpSessions.get(session)?.logLevel, 7)
})

t.test('tool results of 2025-11-25: image, audio, embedded resources and resource links pass through, with structuredContent', async t => {
  const [a] = await replicas(t, false)
  const session = await open(a, {})
  const res = await post(a, toolCall('media', {}, 5), session)
  const body = await res.json() as { result: { content: Array<Record<string, unknown>>, structuredContent: unknown } }
  t.same(body.result.content.map(c => c.type), ['text', 'image', 'audio', 'resource', 'resource', 'resource_link'])
  t.same(body.result.content[1], { type: 'image', data: 'iVBORw0KGgo=', mimeType: 'image/png', annotations: { audience: ['user'], priority: 0.5 } })
  t.same(body.result.content[4], { type: 'resource', resource: { uri: 'news://blob', mimeType: 'application/octet-stream', blob: 'AAEC' } })
  t.same(body.result.content[5], { type: 'resource_link', uri: 'news://sentiment/AAPL', name: 'aapl', title: 'AAPL sentiment', mimeType: 'application/json', icons: [{ src: 'https://example.com/i.png' }] })
  t.same(body.result.structuredContent, { kinds: ['text', 'image', 'audio', 'resource', 'resource_link'] })
})

t.test('options are validated at registration', async t => {
  await t.rejects(buildMcpApp(t, { defaultLogLevel: 'loud' as 'info' }, { issuer }), { message: 'mcp: "defaultLogLevel" must be an MCP logging level (debug, info, notice, warning, error, critical, alert, emergency)' })
  await t.rejects(buildMcpApp(t, { clientRequestTimeoutMs: 0 }, { issuer }), { message: 'mcp: "clientRequestTimeoutMs" must be a positive integer' })
  await t.rejects(buildMcpApp(t, { sseRetryMs: 1.5 }, { issuer }), { message: 'mcp: "sseRetryMs" must be a positive integer' })
})
