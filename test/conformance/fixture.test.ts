import t, { type Test } from 'tap'
import { inflateSync } from 'node:zlib'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { CreateMessageRequestSchema, ElicitRequestSchema, LoggingMessageNotificationSchema, type CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { startConformanceServer } from './server.js'
import { startBearerProxy } from './bearer-proxy.js'
import { onePixelPng, silentWav } from './fixture.js'

/**
 * The server `npm run conformance` runs: the fixture plugin loads next to the
 * mcp and auth plugins, and answers, through the bearer proxy, what the
 * suite's scenarios ask for. (The suite itself runs in `npm run conformance`.)
 */

// One server for the file (each test opens sessions of its own).
const server = await startConformanceServer()
t.teardown(() => server.close())

async function connect (t: Test): Promise<Client> {
  const client = new Client({ name: 'fixture-test', version: '1.0.0' }, { capabilities: { sampling: {}, elicitation: {} } })
  await client.connect(new StreamableHTTPClientTransport(new URL(server.url)))
  t.teardown(() => client.close())
  return client
}

t.test('the conformance server: auth in front, the proxy adds the token, forged origins refused', async t => {
  const init = {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } })
  }
  const direct = await fetch(server.mcpUrls[0] as string, init)
  t.equal(direct.status, 401, 'the endpoint itself wants a bearer token')
  t.match(direct.headers.get('www-authenticate'), /^Bearer /)
  const proxied = await fetch(server.url, init)
  t.equal(proxied.status, 200, 'through the proxy, the token is there')
  t.ok(proxied.headers.get('mcp-session-id'), 'a session')
  await proxied.body?.cancel()
  // dns-rebinding-protection sends a forged Host and Origin: the proxy passes them on as they are.
  const forged = await fetch(server.url, { ...init, headers: { ...init.headers, origin: 'http://evil.example.com' } })
  t.equal(forged.status, 403, 'a foreign origin is refused by the server, not hidden by the proxy')
  await forged.body?.cancel()
})

t.test('the proxy answers 502 when the server is not there', async t => {
  const proxy = await startBearerProxy('http://127.0.0.1:9/mcp', 'token')
  t.teardown(() => proxy.close())
  const res = await fetch(`${proxy.url}/mcp`, { method: 'POST', body: '{}' })
  t.equal(res.status, 502)
})

t.test('with several targets, the proxy sends the requests to each in turn', async t => {
  const seen: string[] = []
  const targets = await Promise.all(['a', 'b'].map(async name => {
    const target = createServer((req, res) => { seen.push(`${name} ${req.headers.authorization ?? ''}`); res.end(name) })
    await new Promise<void>(resolve => target.listen(0, '127.0.0.1', resolve))
    t.teardown(() => { target.close() })
    return `http://127.0.0.1:${(target.address() as AddressInfo).port}/mcp`
  }))
  const proxy = await startBearerProxy(targets, 'shared-token')
  t.teardown(() => proxy.close())
  const answers: string[] = []
  for (let i = 0; i < 4; i++) answers.push(await (await fetch(`${proxy.url}/mcp`)).text())
  t.same(answers, ['a', 'b', 'a', 'b'])
  t.same(seen, ['a Bearer shared-token', 'b Bearer shared-token', 'a Bearer shared-token', 'b Bearer shared-token'])
})

t.test('the images and the recording are well-formed', async t => {
  const png = onePixelPng()
  t.same([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature')
  t.equal(png.readUInt32BE(16), 1, 'width 1')
  t.equal(png.readUInt32BE(20), 1, 'height 1')
  const idatLength = png.readUInt32BE(33)
  t.equal(png.subarray(37, 41).toString('latin1'), 'IDAT')
  t.same([...inflateSync(png.subarray(41, 41 + idatLength))], [0, 0xff, 0, 0], 'one red pixel')
  t.equal(png.subarray(-8, -4).toString('latin1'), 'IEND')
  const wav = silentWav()
  t.equal(wav.subarray(0, 4).toString('latin1'), 'RIFF')
  t.equal(wav.readUInt32LE(4), wav.length - 8, 'RIFF size')
  t.equal(wav.subarray(8, 16).toString('latin1'), 'WAVEfmt ')
  t.equal(wav.readUInt32LE(40), wav.length - 44, 'data size')
})

t.test('the fixture\'s tools answer as the scenarios expect', async t => {
  const client = await connect(t)

  const { tools } = await client.listTools()
  const names = tools.map(tool => tool.name)
  for (const name of ['test_simple_text', 'test_image_content', 'test_audio_content', 'test_embedded_resource',
    'test_multiple_content_types', 'test_error_handling', 'test_tool_with_progress', 'json_schema_2020_12_tool',
    'test_tool_with_logging', 'test_sampling', 'test_elicitation', 'test_elicitation_sep1034_defaults',
    'test_elicitation_sep1330_enums', 'test_reconnection']) {
    t.ok(names.includes(name), name)
  }
  t.ok(tools.every(tool => typeof tool.description === 'string' && tool.description !== ''), 'every tool has a description (tools-list)')

  const call = async (name: string, args?: Record<string, unknown>): Promise<CallToolResult> =>
    await client.callTool({ name, ...(args !== undefined && { arguments: args }) }) as CallToolResult

  t.same((await call('test_simple_text')).content, [{ type: 'text', text: 'This is a simple text response for testing.' }],
    'called without arguments, as tools-call-simple-text does')
  t.same((await call('test_image_content', {})).content, [{ type: 'image', data: onePixelPng().toString('base64'), mimeType: 'image/png' }])
  t.same((await call('test_audio_content', {})).content, [{ type: 'audio', data: silentWav().toString('base64'), mimeType: 'audio/wav' }])
  t.same((await call('test_embedded_resource', {})).content, [{
    type: 'resource',
    resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: 'This is an embedded resource content.' }
  }])
  const mixed = await call('test_multiple_content_types', {})
  t.same(mixed.content.map(c => c.type), ['text', 'image', 'resource'])
  t.same(mixed.content[2], { type: 'resource', resource: { uri: 'test://mixed-content-resource', mimeType: 'application/json', text: '{"test":"data","value":123}' } })

  const error = await call('test_error_handling', {})
  t.equal(error.isError, true, 'an isError result, not a JSON-RPC error')
  t.same(error.content, [{ type: 'text', text: 'This tool intentionally returns an error for testing' }])

  const progress: Array<{ progress: number, total?: number }> = []
  const started = Date.now()
  await client.callTool({ name: 'test_tool_with_progress', arguments: {} }, undefined, {
    onprogress: p => { progress.push({ progress: p.progress, total: p.total }) }
  })
  t.same(progress, [{ progress: 0, total: 100 }, { progress: 50, total: 100 }, { progress: 100, total: 100 }])
  t.ok(Date.now() - started >= 90, 'about 50 ms between reports')

  const schema = tools.find(tool => tool.name === 'json_schema_2020_12_tool')?.inputSchema as Record<string, unknown>
  t.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema', 'the schema as written (json-schema-2020-12)')
  t.same(Object.keys(schema.$defs as object), ['address'])
  t.equal(schema.additionalProperties, false)
  t.same((await call('json_schema_2020_12_tool', { name: 'Ada', address: { city: 'London' } })).content,
    [{ type: 'text', text: 'Received: {"name":"Ada","address":{"city":"London"}}' }])
  const refused = await call('json_schema_2020_12_tool', { name: 'Ada', extra: true })
  t.equal(refused.isError, true, 'additionalProperties: false is enforced')
})

t.test('the fixture\'s tools that log, ask the client, and close their stream', async t => {
  const client = await connect(t)

  const logs: unknown[] = []
  client.setNotificationHandler(LoggingMessageNotificationSchema, n => { logs.push(n.params) })
  await client.setLoggingLevel('debug')
  t.same((await client.callTool({ name: 'test_tool_with_logging', arguments: {} })).content,
    [{ type: 'text', text: 'Tool with logging executed successfully' }])
  t.same(logs, ['Tool execution started', 'Tool processing data', 'Tool execution completed'].map(data => ({ level: 'info', data })),
    'three info messages during the call (tools-call-with-logging)')

  const sampled: unknown[] = []
  client.setRequestHandler(CreateMessageRequestSchema, async request => {
    sampled.push(request.params)
    return { role: 'assistant', content: { type: 'text', text: 'a test answer' }, model: 'test-model', stopReason: 'endTurn' }
  })
  t.same((await client.callTool({ name: 'test_sampling', arguments: { prompt: 'Test prompt' } })).content,
    [{ type: 'text', text: 'LLM response: a test answer' }])
  t.match(sampled, [{ messages: [{ role: 'user', content: { type: 'text', text: 'Test prompt' } }], maxTokens: 100 }])

  const elicited: Array<{ message: string, requestedSchema: { properties: Record<string, Record<string, unknown>> } }> = []
  client.setRequestHandler(ElicitRequestSchema, async request => {
    elicited.push(request.params as typeof elicited[0])
    return { action: 'accept', content: { username: 'ada', email: 'ada@example.com' } }
  })
  t.same((await client.callTool({ name: 'test_elicitation', arguments: { message: 'Who are you?' } })).content,
    [{ type: 'text', text: 'User response: action=accept, content={"username":"ada","email":"ada@example.com"}' }])
  t.equal(elicited[0]?.message, 'Who are you?')
  t.same(Object.keys(elicited[0]?.requestedSchema.properties ?? {}), ['username', 'email'])

  t.match((await client.callTool({ name: 'test_elicitation_sep1034_defaults', arguments: {} })).content,
    [{ type: 'text', text: /^Elicitation completed: action=accept, content=\{/ }])
  t.same(Object.fromEntries(Object.entries(elicited[1]?.requestedSchema.properties ?? {}).map(([k, v]) => [k, v.default])),
    { name: 'John Doe', age: 30, score: 95.5, status: 'active', verified: true }, 'a default for every primitive type (SEP-1034)')
  await client.callTool({ name: 'test_elicitation_sep1330_enums', arguments: {} })
  const enums = elicited[2]?.requestedSchema.properties ?? {}
  t.same(Object.keys(enums), ['untitledSingle', 'titledSingle', 'legacyEnum', 'untitledMulti', 'titledMulti'], 'the five enum forms (SEP-1330)')
  t.equal((enums.legacyEnum?.enumNames as string[]).length, 3)

  // The SDK client follows the closed stream with GET and Last-Event-ID by itself (server-sse-polling).
  t.same((await client.callTool({ name: 'test_reconnection', arguments: {} })).content,
    [{ type: 'text', text: 'Reconnection test completed' }])
})

t.test('without the client\'s capability, sampling and elicitation tools answer with an error result', async t => {
  const client = new Client({ name: 'no-capabilities', version: '1.0.0' })
  await client.connect(new StreamableHTTPClientTransport(new URL(server.url)))
  t.teardown(() => client.close())
  const sampling = await client.callTool({ name: 'test_sampling', arguments: { prompt: 'x' } }) as CallToolResult
  t.equal(sampling.isError, true)
  t.match(sampling.content, [{ type: 'text', text: /sampling/i }])
  const elicitation = await client.callTool({ name: 'test_elicitation', arguments: { message: 'x' } }) as CallToolResult
  t.equal(elicitation.isError, true)
  t.match(elicitation.content, [{ type: 'text', text: /elicitation/i }])
})

t.test('the fixture\'s resources, prompts and completions answer as the scenarios expect', async t => {
  const client = await connect(t)

  const { resources } = await client.listResources()
  t.same(resources.map(r => r.uri), ['test://static-text', 'test://static-binary', 'test://watched-resource'])
  t.ok(resources.every(r => r.name !== '' && r.description !== undefined), 'each with a name and a description')
  t.same((await client.readResource({ uri: 'test://static-text' })).contents,
    [{ uri: 'test://static-text', mimeType: 'text/plain', text: 'This is the content of the static text resource.' }])
  t.same((await client.readResource({ uri: 'test://static-binary' })).contents,
    [{ uri: 'test://static-binary', mimeType: 'image/png', blob: onePixelPng().toString('base64') }])
  const { resourceTemplates } = await client.listResourceTemplates()
  t.same(resourceTemplates.map(r => r.uriTemplate), ['test://template/{id}/data'])
  t.same((await client.readResource({ uri: 'test://template/123/data' })).contents,
    [{ uri: 'test://template/123/data', mimeType: 'application/json', text: '{"id":"123","templateTest":true,"data":"Data for ID: 123"}' }])
  t.same(await client.subscribeResource({ uri: 'test://watched-resource' }), {})
  t.same(await client.unsubscribeResource({ uri: 'test://watched-resource' }), {})

  const { prompts } = await client.listPrompts()
  t.same(prompts.map(p => p.name), ['test_simple_prompt', 'test_prompt_with_arguments', 'test_prompt_with_embedded_resource', 'test_prompt_with_image'])
  t.ok(prompts.every(p => typeof p.description === 'string' && p.description !== ''), 'each with a description (prompts-list)')
  t.same((await client.getPrompt({ name: 'test_simple_prompt' })).messages,
    [{ role: 'user', content: { type: 'text', text: 'This is a simple prompt for testing.' } }])
  t.same((await client.getPrompt({ name: 'test_prompt_with_arguments', arguments: { arg1: 'hello', arg2: 'world' } })).messages,
    [{ role: 'user', content: { type: 'text', text: "Prompt with arguments: arg1='hello', arg2='world'" } }])
  t.same((await client.getPrompt({ name: 'test_prompt_with_embedded_resource', arguments: { resourceUri: 'test://example-resource' } })).messages, [
    { role: 'user', content: { type: 'resource', resource: { uri: 'test://example-resource', mimeType: 'text/plain', text: 'Embedded resource content for testing.' } } },
    { role: 'user', content: { type: 'text', text: 'Please process the embedded resource above.' } }
  ])
  t.same((await client.getPrompt({ name: 'test_prompt_with_image' })).messages, [
    { role: 'user', content: { type: 'image', data: onePixelPng().toString('base64'), mimeType: 'image/png' } },
    { role: 'user', content: { type: 'text', text: 'Please analyze the image above.' } }
  ])

  const complete = async (value: string): Promise<string[]> =>
    (await client.complete({ ref: { type: 'ref/prompt', name: 'test_prompt_with_arguments' }, argument: { name: 'arg1', value } })).completion.values
  t.same(await complete('par'), ['paris', 'park', 'party'])
  t.same(await complete('Test'), ['test', 'testing'], 'case does not matter')
  t.same(await complete('zzz'), [], 'nothing to suggest is an empty list')
})

t.test('a cancelled progress call stops between its reports', async t => {
  const client = await connect(t)
  const controller = new AbortController()
  const reports: number[] = []
  const call = client.callTool({ name: 'test_tool_with_progress', arguments: {} }, undefined, {
    signal: controller.signal,
    onprogress: p => { reports.push(p.progress); controller.abort() }
  })
  await t.rejects(call, /abort/i)
  await new Promise(resolve => setTimeout(resolve, 150))
  t.same(reports, [0], 'no report after the cancellation')
})
