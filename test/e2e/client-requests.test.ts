// Requests from server to client (MCP client "Elicitation", "Sampling") and
// MCP logging, with the official SDK client over real HTTP: one replica in
// memory, and two replicas sharing a real redis-server.
import t, { type Test } from 'tap'
import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import {
  CreateMessageRequestSchema, ElicitRequestSchema, LoggingMessageNotificationSchema,
  type ClientCapabilities, type LoggingMessageNotification
} from '@modelcontextprotocol/sdk/types.js'
import { RESOURCE } from '../helpers/build-app.js'
import { LocalIssuer } from '../helpers/issuer.js'
import { buildMcpApp, listenLocal, type McpTestApp } from '../helpers/mcp-app.js'
import { RedisServer, sharedRedis, until } from '../helpers/redis-server.js'
import { ClientCapabilityError, ClientRequestError } from '../../plugins/mcp.js'

const issuer = await LocalIssuer.start()
t.teardown(() => issuer.close())
const redis = await RedisServer.start(t)
let n = 0

/** Tools that reach the client through their context. */
function clientTools (app: FastifyInstance): void {
  app.mcpTool({
    name: 'ask_name',
    description: 'Asks the user for a name (form elicitation)',
    inputSchema: z.object({ message: z.string() })
  }, async ({ message }, ctx) => {
    try {
      const answer = await ctx.elicit({
        message,
        requestedSchema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] }
      })
      return { content: [{ type: 'text', text: JSON.stringify(answer) }] }
    } catch (err) {
      const reason = err instanceof ClientRequestError ? err.reason : err instanceof ClientCapabilityError ? 'capability' : 'other'
      return { content: [{ type: 'text', text: `failed: ${reason}: ${(err as Error).message}` }], isError: true }
    }
  })
  app.mcpTool({
    name: 'ask_model',
    description: 'Asks the client\'s model (sampling)',
    inputSchema: z.object({ prompt: z.string() })
  }, async ({ prompt }, ctx) => {
    const answer = await ctx.createMessage({ messages: [{ role: 'user', content: { type: 'text', text: prompt } }], maxTokens: 50 })
    const content = answer.content as { type: string, text?: string }
    return { content: [{ type: 'text', text: `model ${answer.model} said: ${content.text ?? ''}` }] }
  })
  app.mcpTool({
    name: 'log_levels',
    description: 'Logs once at debug, info, warning and error',
    inputSchema: z.object({})
  }, async (_args, ctx) => {
    ctx.mcpLog.debug('debug detail', 'probe')
    ctx.mcpLog.info({ step: 'started' })
    ctx.mcpLog.warning('quota near')
    ctx.mcpLog.error('upstream failed', 'probe')
    return { content: [{ type: 'text', text: 'logged' }] }
  })
  app.mcpTool({
    name: 'poll_me',
    description: 'Closes its answer stream at once, then logs and returns (SSE polling)',
    inputSchema: z.object({})
  }, async (_args, ctx) => {
    ctx.closeSseStream()
    await new Promise(resolve => setTimeout(resolve, 100))
    ctx.mcpLog.notice('while the client polls')
    return { content: [{ type: 'text', text: 'polled' }] }
  })
  app.mcpTool({
    name: 'capabilities',
    description: 'Returns what the client declared',
    inputSchema: z.object({})
  }, (_args, ctx) => ({ content: [{ type: 'text', text: JSON.stringify(ctx.clientCapabilities ?? null) }] }))
}

interface Replica { app: McpTestApp, base: string }

async function replicas (t: Test, shared: boolean, options = {}): Promise<[Replica, Replica]> {
  const prefix = `clientreq${++n}:`
  const out: Replica[] = []
  for (let i = 0; i < (shared ? 2 : 1); i++) {
    const app = await buildMcpApp(t, { ...options, ...(shared && { redis: await sharedRedis(t, redis, prefix) }) }, { issuer, tools: clientTools })
    out.push({ app, base: await listenLocal(app.app) })
  }
  return (shared ? out : [out[0], out[0]]) as [Replica, Replica]
}

/**
 * The SDK client behind a "load balancer": requests (and the GET stream) go
 * to A, POSTs that carry a response (the client's answers) to B.
 */
async function connect (t: Test, a: Replica, b: Replica, capabilities: ClientCapabilities): Promise<{ client: Client, answersOn: string[] }> {
  const answersOn: string[] = []
  const lb: typeof fetch = async (input, init) => {
    const url = new URL(input instanceof Request ? input.url : String(input))
    const isAnswer = typeof init?.body === 'string' && !init.body.includes('"method"')
    const target = isAnswer ? b : a
    if (isAnswer) answersOn.push(target.base)
    return await fetch(`${target.base}${url.pathname}`, init)
  }
  const transport = new StreamableHTTPClientTransport(new URL(RESOURCE), { requestInit: { headers: { Authorization: `Bearer ${a.app.token}` } }, fetch: lb })
  const client = new Client({ name: 'tap-client-requests', version: '1.0.0' }, { capabilities })
  t.teardown(() => client.close())
  await client.connect(transport)
  return { client, answersOn }
}

function text (result: Awaited<ReturnType<Client['callTool']>>): string {
  return (result.content as Array<{ text: string }>)[0]?.text as string
}

for (const shared of [false, true]) {
  const mode = shared ? 'two replicas sharing Redis (answers POSTed to the other replica)' : 'one replica in memory'

  t.test(`elicitation, form mode: ${mode}`, async t => {
    const [a, b] = await replicas(t, shared)
    const { client, answersOn } = await connect(t, a, b, { elicitation: {} })
    const seen: unknown[] = []
    client.setRequestHandler(ElicitRequestSchema, async request => {
      seen.push(request.params)
      return { action: 'accept', content: { name: 'Ada' } }
    })
    const result = await client.callTool({ name: 'ask_name', arguments: { message: 'Who are you?' } })
    t.notOk(result.isError)
    t.same(JSON.parse(text(result)), { action: 'accept', content: { name: 'Ada' } })
    t.match(seen, [{ message: 'Who are you?', requestedSchema: { required: ['name'] } }])
    t.same(answersOn, [b.base], 'the answer went to replica B')
  })

  t.test(`sampling: ${mode}`, async t => {
    const [a, b] = await replicas(t, shared)
    const { client } = await connect(t, a, b, { sampling: {} })
    client.setRequestHandler(CreateMessageRequestSchema, async request => {
      const message = request.params.messages[0]?.content as { text: string }
      return { role: 'assistant', content: { type: 'text', text: `echo ${message.text}` }, model: 'test-model', stopReason: 'endTurn' }
    })
    const result = await client.callTool({ name: 'ask_model', arguments: { prompt: 'hi' } })
    t.equal(text(result), 'model test-model said: echo hi')
  })

  t.test(`logging: setLoggingLevel applies to the session on every replica: ${mode}`, async t => {
    const [a, b] = await replicas(t, shared)
    const { client } = await connect(t, a, b, {})
    const messages: Array<LoggingMessageNotification['params']> = []
    client.setNotificationHandler(LoggingMessageNotificationSchema, n => { messages.push(n.params) })
    // Default level (info): debug is held back.
    await client.callTool({ name: 'log_levels', arguments: {} })
    t.same(messages.map(m => m.level), ['info', 'warning', 'error'])
    t.same(messages[0], { level: 'info', data: { step: 'started' } })
    t.same(messages[2], { level: 'error', logger: 'probe', data: 'upstream failed' })
    messages.length = 0
    // Set on B (the load balancer sends only answers there: set it directly), felt by the call on A.
    await fetch(`${b.base}/mcp`, {
      method: 'POST',
      headers: { authorization: `Bearer ${a.app.token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': (client.transport as StreamableHTTPClientTransport).sessionId as string },
      body: JSON.stringify({ jsonrpc: '2.0', id: 'lvl', method: 'logging/setLevel', params: { level: 'warning' } })
    })
    // The other replica's copy learns it by pub/sub (the delay of one message, as for a deletion).
    const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId as string
    await until('replica A knows the level', () => a.app.app.mcpSessions.get(sessionId)?.logLevel === 3)
    await client.callTool({ name: 'log_levels', arguments: {} })
    t.same(messages.map(m => m.level), ['warning', 'error'])
    messages.length = 0
    await client.setLoggingLevel('debug')
    await client.callTool({ name: 'log_levels', arguments: {} })
    t.same(messages.map(m => m.level), ['debug', 'info', 'warning', 'error'])
  })
}

t.test('SSE polling with the SDK client: the server closes the answer stream, the SDK reconnects with Last-Event-ID after `retry`, and gets the log and the result', async t => {
  const [a, b] = await replicas(t, true, { sseRetryMs: 50 })
  const { client } = await connect(t, a, b, {})
  const messages: Array<LoggingMessageNotification['params']> = []
  client.setNotificationHandler(LoggingMessageNotificationSchema, n => { messages.push(n.params) })
  const result = await client.callTool({ name: 'poll_me', arguments: {} })
  t.equal(text(result), 'polled')
  t.same(messages, [{ level: 'notice', data: 'while the client polls' }])
})

t.test('a client that declared nothing: the tool learns it (ClientCapabilityError), and the request is never sent', async t => {
  const [a, b] = await replicas(t, false)
  const { client } = await connect(t, a, b, {})
  const result = await client.callTool({ name: 'ask_name', arguments: { message: 'Who?' } })
  t.equal(result.isError, true)
  t.match(text(result), /^failed: capability: The client does not support elicitation/)
  const caps = await client.callTool({ name: 'capabilities', arguments: {} })
  t.equal(text(caps), '{}')
  // Sampling not declared: the unhandled ClientCapabilityError becomes the tool's error result.
  const sampled = await client.callTool({ name: 'ask_model', arguments: { prompt: 'x' } })
  t.equal(sampled.isError, true)
  t.match(text(sampled), /does not support sampling/)
})

t.test('what the client declared is kept as the SDK shape (elicitation form and url, sampling, roots)', async t => {
  const [a, b] = await replicas(t, true)
  const { client } = await connect(t, a, b, { elicitation: { form: {}, url: {} }, sampling: { tools: {} }, roots: { listChanged: true }, experimental: { big: { x: 'y'.repeat(1000) } } })
  const caps = await client.callTool({ name: 'capabilities', arguments: {} })
  t.same(JSON.parse(text(caps)), { elicitation: { form: {}, url: {} }, sampling: { tools: {} }, roots: { listChanged: true } })
})
