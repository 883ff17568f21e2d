import t from 'tap'
import { z } from 'zod'
import Fastify from 'fastify'
import { CLIENT_INFO_MAX_LENGTH, McpProtocol, PROTOCOL_VERSIONS, classify, rpcError, type DispatchScope } from '../../../lib/mcp/protocol.js'
import { ToolRegistry } from '../../../lib/mcp/tools.js'

t.test('classify sorts messages by their JSON-RPC 2.0 shape (§4, §5)', async t => {
  const cases: Array<[unknown, string]> = [
    [{ jsonrpc: '2.0', id: 1, method: 'ping' }, 'request'],
    [{ jsonrpc: '2.0', id: 'a', method: 'ping', params: {} }, 'request'],
    [{ jsonrpc: '2.0', method: 'notifications/initialized' }, 'notification'],
    [{ jsonrpc: '2.0', id: 1, result: {} }, 'response'],
    [{ jsonrpc: '2.0', id: 'x', error: { code: 1, message: 'm' } }, 'response'],
    [{ jsonrpc: '2.0', id: null, method: 'ping' }, 'invalid'], // MCP: ids are never null
    [{ jsonrpc: '2.0', id: {}, method: 'ping' }, 'invalid'],
    [{ jsonrpc: '2.0', id: Number.NaN, method: 'ping' }, 'invalid'],
    [{ jsonrpc: '2.0', id: 1, method: 'ping', params: [] }, 'invalid'], // MCP params are objects
    [{ jsonrpc: '2.0', id: 1, method: 'ping', params: null }, 'invalid'],
    [{ jsonrpc: '2.0', id: 1, method: 7 }, 'invalid'],
    [{ jsonrpc: '2.0', id: 1 }, 'invalid'],
    [{ jsonrpc: '2.0', id: null, result: {} }, 'invalid'],
    [{ jsonrpc: '1.0', id: 1, method: 'ping' }, 'invalid'],
    [{ id: 1, method: 'ping' }, 'invalid'],
    [null, 'invalid'],
    ['ping', 'invalid'],
    [[{ jsonrpc: '2.0', id: 1, method: 'ping' }], 'invalid']
  ]
  for (const [msg, kind] of cases) t.equal(classify(msg), kind, JSON.stringify(msg) ?? String(msg))
})

t.test('rpcError carries data only when given', async t => {
  t.same(rpcError(1, -32602, 'bad'), { jsonrpc: '2.0', id: 1, error: { code: -32602, message: 'bad' } })
  t.same(rpcError(null, -32602, 'bad', { field: 'x' }), { jsonrpc: '2.0', id: null, error: { code: -32602, message: 'bad', data: { field: 'x' } } })
})

t.test('PROTOCOL_VERSIONS: newest first, nothing older than 2024-11-05', async t => {
  t.equal(PROTOCOL_VERSIONS[0], '2025-11-25')
  t.ok(PROTOCOL_VERSIONS.includes('2025-06-18'))
  t.ok(PROTOCOL_VERSIONS.includes('2024-11-05'))
  t.notOk(PROTOCOL_VERSIONS.includes('2024-10-07'))
})

t.test('initialize omits instructions when there are none', async t => {
  const protocol = new McpProtocol({ registry: new ToolRegistry(), serverInfo: { name: 's', version: '1' } })
  const init = protocol.initialize({ protocolVersion: '2025-06-18', clientInfo: 'not an object' })
  t.equal(init.clientInfo, undefined)
  t.notOk('instructions' in init.result)
  t.throws(() => protocol.initialize(undefined), { code: -32602, message: /protocolVersion/ })
})

t.test('initialize keeps only clientInfo name and version, each cut to 64 characters', async t => {
  const protocol = new McpProtocol({ registry: new ToolRegistry(), serverInfo: { name: 's', version: '1' } })
  const huge = 'n'.repeat(1024 * 1024)
  const init = protocol.initialize({ protocolVersion: '2025-06-18', clientInfo: { name: huge, version: 'v'.repeat(100), title: huge, icons: [huge] } })
  t.same(init.clientInfo, { name: 'n'.repeat(CLIENT_INFO_MAX_LENGTH), version: 'v'.repeat(CLIENT_INFO_MAX_LENGTH) })
  t.equal(CLIENT_INFO_MAX_LENGTH, 64)
  t.same(protocol.initialize({ protocolVersion: '2025-06-18', clientInfo: { name: 'ok', version: 7 } }).clientInfo, { name: 'ok' }, 'a non-string version is dropped')
  t.same(protocol.initialize({ protocolVersion: '2025-06-18', clientInfo: { name: ['x'] } }).clientInfo, {}, 'a non-string name too')
  // A surrogate pair straddling the cut is dropped whole, never split.
  const emoji = `${'a'.repeat(63)}\u{1F600}tail`
  const cut = protocol.initialize({ protocolVersion: '2025-06-18', clientInfo: { name: emoji } }).clientInfo?.name
  t.equal(cut, 'a'.repeat(63))
  t.equal(protocol.initialize({ protocolVersion: '2025-06-18', clientInfo: { name: `${'a'.repeat(62)}\u{1F600}tail` } }).clientInfo?.name, `${'a'.repeat(62)}\u{1F600}`)
})

t.test('dispatch', async t => {
  const logs: Array<Record<string, unknown>> = []
  const { log } = Fastify({ logger: { level: 'debug', stream: { write: (line: string) => { logs.push(JSON.parse(line) as Record<string, unknown>) } } } })
  const registry = new ToolRegistry()
  registry.register({
    name: 'ordered',
    description: 'Needs a below b',
    inputSchema: z.object({ a: z.number(), b: z.number() }).refine(v => v.a < v.b, 'a must be below b')
  }, ({ a, b }) => ({ content: [{ type: 'text', text: String(b - a) }] }))
  registry.register({
    name: 'schema_bug',
    description: 'Its schema throws while validating',
    inputSchema: z.object({}).superRefine(() => { throw new Error('refinement exploded at /app/x.ts:1') })
  }, () => ({ content: [] }))
  registry.register({
    name: 'defaults',
    description: 'All arguments optional',
    inputSchema: z.object({ n: z.number().default(3) })
  }, ({ n }, ctx) => {
    ctx.sendProgress(1) // without a streaming transport: a no-op
    return { content: [{ type: 'text', text: `${n} ${ctx.sessionId ?? 'no session'}` }] }
  })
  const Out = z.object({ n: z.number() })
  registry.register({ name: 'extra_keys', description: 'Returns more than it declares', inputSchema: z.object({}), outputSchema: Out },
    () => ({ content: [{ type: 'text', text: '1' }], structuredContent: { n: 1, internal: 'x' } as unknown as { n: number } }))
  registry.register({ name: 'wrong_type', description: 'Breaks its schema', inputSchema: z.object({}), outputSchema: Out },
    () => ({ content: [{ type: 'text', text: '1' }], structuredContent: { n: 'one' } as unknown as { n: number } }))
  registry.register({ name: 'no_structured', description: 'Forgets structuredContent', inputSchema: z.object({}), outputSchema: Out },
    () => ({ content: [{ type: 'text', text: '1' }] }))
  const cachedAnswer = { content: [{ type: 'text' as const, text: '7' }], structuredContent: { n: 7 } }
  registry.register({ name: 'cached', description: 'Answers with the same object every time', inputSchema: z.object({}), outputSchema: Out },
    () => cachedAnswer)
  registry.register({ name: 'error_result', description: 'Fails politely', inputSchema: z.object({}), outputSchema: Out },
    () => ({ content: [{ type: 'text', text: 'upstream down' }], isError: true }))
  const protocol = new McpProtocol({ registry, serverInfo: { name: 's', version: '1' } })
  const scope = (protocolVersion = '2025-06-18'): DispatchScope => ({ auth: null, sessionId: undefined, protocolVersion, log, signal: new AbortController().signal, notify: undefined })

  t.test('an argument error at the root names "(arguments)"', async t => {
    const res = await protocol.handle({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'ordered', arguments: { a: 2, b: 1 } } }, scope())
    t.same(res.error, { code: -32602, message: 'Invalid arguments for tool ordered: (arguments): a must be below b' })
    const ok = await protocol.handle({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'ordered', arguments: { a: 1, b: 3 } } }, scope())
    t.same(ok.result, { content: [{ type: 'text', text: '2' }] })
  })

  t.test('missing arguments count as {} (tools/call "arguments" is optional)', async t => {
    const res = await protocol.handle({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'defaults' } }, scope())
    t.same(res.result, { content: [{ type: 'text', text: '3 no session' }] })
  })

  t.test('an unexpected failure is -32603 without details, and logged', async t => {
    const res = await protocol.handle({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'schema_bug', arguments: {} } }, scope())
    t.same(res, { jsonrpc: '2.0', id: 4, error: { code: -32603, message: 'Internal error' } })
    t.ok(logs.some(l => l.msg === 'MCP request failed' && l.method === 'tools/call'))
  })

  t.test('results are checked against the outputSchema (tools "Output Schema")', async t => {
    const call = async (name: string): Promise<Record<string, unknown>> =>
      (await protocol.handle({ jsonrpc: '2.0', id: name, method: 'tools/call', params: { name } }, scope())).result as Record<string, unknown>
    t.same(await call('extra_keys'), { content: [{ type: 'text', text: '1' }], structuredContent: { n: 1 } }, 'undeclared keys are dropped')
    for (const name of ['wrong_type', 'no_structured']) {
      t.same(await call(name), { content: [{ type: 'text', text: `The tool ${name} failed unexpectedly; try again later.` }], isError: true }, name)
    }
    t.ok(logs.some(l => l.msg === 'tool result does not match its outputSchema' && l.tool === 'wrong_type' && String(l.issues).startsWith('n: ')))
    t.same(await call('error_result'), { content: [{ type: 'text', text: 'upstream down' }], isError: true }, 'error results need no structuredContent')
    const first = await call('cached')
    t.same(first, cachedAnswer)
    t.equal(await call('cached'), first, 'the same tool result again gives the same checked object (its JSON is reused by the transport)')
  })

  t.test('initialize is not a method of an open session', async t => {
    const res = await protocol.handle({ jsonrpc: '2.0', id: 5, method: 'initialize', params: { protocolVersion: '2025-06-18' } }, scope())
    t.equal(res.error?.code, -32600)
  })
})

t.test('with a metrics listener, a tool that throws is counted as failed, a ToolError as a tool error', async t => {
  const { toolCallChannel } = await import('../../../lib/observability/channels.js')
  const { ToolError } = await import('../../../lib/mcp/tools.js')
  const registry = new ToolRegistry()
  registry.register({ name: 'throws', description: 'A bug', inputSchema: z.object({}) }, () => { throw new Error('bug') })
  registry.register({ name: 'refuses', description: 'Says no', inputSchema: z.object({}) }, () => { throw new ToolError('no') })
  const protocol = new McpProtocol({ registry, serverInfo: { name: 's', version: '1' } })
  const seen: Array<{ tool: string, outcome: string }> = []
  const listener = (message: { tool: string, outcome: string }): void => { seen.push({ tool: message.tool, outcome: message.outcome }) }
  toolCallChannel.subscribe(listener)
  t.teardown(() => { toolCallChannel.unsubscribe(listener) })
  const log = Fastify({ logger: { level: 'silent' } }).log
  const scope: DispatchScope = { auth: null, sessionId: undefined, protocolVersion: '2025-06-18', log, signal: new AbortController().signal, notify: undefined }
  const failed = await protocol.handle({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'throws' } }, scope)
  t.equal((failed.result as { isError?: boolean }).isError, true)
  await protocol.handle({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'refuses' } }, scope)
  t.same(seen, [{ tool: 'throws', outcome: 'failed' }, { tool: 'refuses', outcome: 'tool_error' }])
})

t.test('setMethod serves further methods; setCapability declares them in initialize', async t => {
  const protocol = new McpProtocol({ registry: new ToolRegistry(), serverInfo: { name: 's', version: '1' } })
  const scope: DispatchScope = { auth: null, sessionId: undefined, protocolVersion: '2025-11-25', log: Fastify().log, signal: new AbortController().signal, notify: undefined }
  t.same(await protocol.handle({ jsonrpc: '2.0', id: 1, method: 'prompts/list' }, scope), rpcError(1, -32601, 'Method not found: prompts/list'))
  const seen: unknown[] = []
  protocol.setMethod('prompts/list', (params, s) => { seen.push(params, s); return { prompts: [] } })
  protocol.setCapability('prompts', { listChanged: true })
  t.same(await protocol.handle({ jsonrpc: '2.0', id: 2, method: 'prompts/list', params: { cursor: 'c' } }, scope), { jsonrpc: '2.0', id: 2, result: { prompts: [] } })
  t.same(seen, [{ cursor: 'c' }, scope], 'the handler gets the params and the request scope')
  t.same(protocol.initialize({ protocolVersion: '2025-11-25' }).result.capabilities, { tools: { listChanged: true }, prompts: { listChanged: true } })
  t.throws(() => protocol.setMethod('prompts/list', () => ({})), { message: 'mcp: prompts/list already has a handler' })
  t.throws(() => protocol.setMethod('tools/call', () => ({})), { message: 'mcp: tools/call is answered by the protocol itself' })
})
