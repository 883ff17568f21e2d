import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import mcp, { RpcFailure, RpcError, ResourceNotFoundError, RESOURCE_NOT_FOUND } from '../../plugins/mcp.js'
import { initSession, mcpHeaders, postMcp } from '../helpers/mcp-app.js'

let nextId = 10

interface Rpc { result?: Record<string, unknown>, error?: { code: number, message: string, data?: unknown } }

/** An app with plugins/mcp (no auth: these are protocol tests) and a few prompts, resources and templates. */
async function featuresApp (t: Test, opts: { pageSize?: number, stateless?: boolean } = {}): Promise<{ app: FastifyInstance, call: (method: string, params?: unknown) => Promise<Rpc>, session: string | undefined, seen: Record<string, unknown[]> }> {
  const app = Fastify()
  await app.register(mcp, { auth: false, pageSize: opts.pageSize ?? 2, stateless: opts.stateless ?? false })
  const seen: Record<string, unknown[]> = { completions: [], reads: [] }
  app.mcpPrompt({ name: 'greet', title: 'Greeting', description: 'Says hello', arguments: [{ name: 'who', required: true, complete: (value, ctx) => { seen.completions?.push(ctx.arguments); return ['alice', 'bob', 'carol'].filter(n => n.startsWith(value)) } }, { name: 'mood' }] },
    args => ({ messages: [{ role: 'user', content: { type: 'text', text: `Hello ${args.who as string}${args.mood !== undefined ? ` (${args.mood})` : ''}` } }] }))
  app.mcpPrompt({ name: 'plain' }, () => ({ messages: [] }))
  app.mcpPrompt({ name: 'fails' }, () => { throw new RpcFailure(RpcError.InvalidParams, 'Invalid params: not today') })
  app.mcpPrompt({ name: 'many', arguments: [{ name: 'n', complete: () => Array.from({ length: 150 }, (_, i) => `n${i}`) }] }, () => ({ messages: [] }))
  app.mcpPrompt({ name: 'crashes' }, () => { throw new Error('secret at /srv/x.ts:1') })
  app.mcpResource({ uri: 'test://a', name: 'a', title: 'A', mimeType: 'text/plain' }, uri => ({ contents: [{ uri, text: 'A' }] }))
  app.mcpResource({ uri: 'test://b', name: 'b' }, uri => ({ contents: [{ uri, text: 'B' }] }))
  app.mcpResource({ uri: 'test://c', name: 'c' }, uri => ({ contents: [{ uri, blob: Buffer.from('C').toString('base64') }] }))
  app.mcpResourceTemplate({ uriTemplate: 'test://item/{id}', name: 'item', complete: { id: (value, ctx) => { seen.completions?.push(ctx.arguments); return ['1', '2', '10'].filter(v => v.startsWith(value)) } } },
    (uri, { id }, ctx) => {
      seen.reads?.push(ctx.sessionId)
      if (id === '404') throw new ResourceNotFoundError(uri)
      return { contents: [{ uri, text: `item ${id as string}` }] }
    })
  app.mcpResourceTemplate({ uriTemplate: 'test://free/{x}', name: 'free' }, uri => ({ contents: [{ uri, text: 'free' }] }))
  t.teardown(async () => { await app.close() })
  await app.ready()
  const session = opts.stateless === true ? undefined : await initSession(app, undefined)
  const call = async (method: string, params?: unknown): Promise<Rpc> => {
    const res = await postMcp(app, { jsonrpc: '2.0', id: nextId++, method, ...(params !== undefined && { params }) }, mcpHeaders(undefined, session, '2025-06-18'))
    t.equal(res.statusCode, 200, `${method} answers 200`)
    return res.json()
  }
  return { app, call, session, seen }
}

t.test('initialize declares prompts, resources (with subscribe) and completions', async t => {
  const app = Fastify()
  await app.register(mcp, { auth: false })
  t.teardown(async () => { await app.close() })
  const res = await postMcp(app, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 't', version: '1' } } }, mcpHeaders(undefined))
  t.match(res.json().result.capabilities, { prompts: { listChanged: true }, resources: { subscribe: true, listChanged: true }, completions: {} })

  const stateless = Fastify()
  await stateless.register(mcp, { auth: false, stateless: true })
  t.teardown(async () => { await stateless.close() })
  const answer = await postMcp(stateless, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {} } }, mcpHeaders(undefined))
  t.match(answer.json().result.capabilities.resources, { subscribe: false, listChanged: true }, 'no subscriptions without sessions')
})

t.test('the page size is checked at registration', async t => {
  for (const pageSize of [0, -1, 1.5]) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(mcp, { auth: false, pageSize }) }, /mcp: "pageSize" must be a positive integer/)
  }
})

t.test('prompts/list pages through every prompt; a bad cursor is -32602', async t => {
  const { call } = await featuresApp(t)
  const names: string[] = []
  let cursor: string | undefined
  let pages = 0
  do {
    const { result } = await call('prompts/list', cursor === undefined ? {} : { cursor })
    const page = result as { prompts: Array<{ name: string }>, nextCursor?: string }
    t.ok(page.prompts.length <= 2)
    names.push(...page.prompts.map(p => p.name))
    cursor = page.nextCursor
    pages++
  } while (cursor !== undefined)
  t.same(names, ['greet', 'plain', 'fails', 'many', 'crashes'])
  t.equal(pages, 3)
  const first = (await call('prompts/list')).result as { prompts: unknown[] }
  t.same(first.prompts[0], { name: 'greet', title: 'Greeting', description: 'Says hello', arguments: [{ name: 'who', required: true }, { name: 'mood' }] })
  for (const bad of ['nope', 12, '', 'eA']) {
    t.equal((await call('prompts/list', { cursor: bad })).error?.code, RpcError.InvalidParams, `cursor ${JSON.stringify(bad)}`)
  }
})

t.test('prompts/get renders a prompt; unknown prompts and bad arguments are -32602; the server keeps serving', async t => {
  const { call } = await featuresApp(t)
  const { result } = await call('prompts/get', { name: 'greet', arguments: { who: 'alice', mood: 'glad' } })
  t.same(result, { messages: [{ role: 'user', content: { type: 'text', text: 'Hello alice (glad)' } }] })
  const hostile: Array<[unknown, RegExp]> = [
    [{ name: 'nope' }, /Unknown prompt: nope/],
    [{ name: 42 }, /prompt name/],
    [{ name: 'greet' }, /needs argument who/],
    [{ name: 'greet', arguments: { who: 7 } }, /must be a string/],
    [{ name: 'greet', arguments: { who: { $gt: '' } } }, /must be a string/],
    [{ name: 'greet', arguments: 'who=alice' }, /object of strings/],
    [{ name: 'greet', arguments: { who: 'x'.repeat(100_000) } }, /longer than 4096/],
    [{ name: 'greet', arguments: Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`a${i}`, 'x'])) }, /at most 32/],
    [{ name: 'greet', arguments: { who: 'a', extra: 'b' } }, /has no argument extra/],
    [{ name: 'fails' }, /not today/]
  ]
  for (const [params, message] of hostile) {
    const { error } = await call('prompts/get', params)
    t.equal(error?.code, RpcError.InvalidParams, JSON.stringify(params).slice(0, 60))
    t.match(error?.message, message)
  }
  const crashed = await call('prompts/get', { name: 'crashes' })
  t.same(crashed.error, { code: RpcError.InternalError, message: 'Internal error' }, 'a prompt bug leaks nothing')
  t.ok((await call('prompts/get', { name: 'plain' })).result, 'still serving')
})

t.test('resources/list and resources/templates/list page; resources/read serves plain and templated URIs', async t => {
  const { call, session, seen } = await featuresApp(t)
  const first = (await call('resources/list')).result as { resources: Array<{ uri: string }>, nextCursor: string }
  t.same(first.resources, [{ uri: 'test://a', name: 'a', title: 'A', mimeType: 'text/plain' }, { uri: 'test://b', name: 'b' }])
  const second = (await call('resources/list', { cursor: first.nextCursor })).result as { resources: Array<{ uri: string }>, nextCursor?: string }
  t.same(second.resources.map(r => r.uri), ['test://c'])
  t.equal(second.nextCursor, undefined)
  t.equal((await call('resources/list', { cursor: 'bogus' })).error?.code, RpcError.InvalidParams)
  t.equal((await call('resources/list', { cursor: first.nextCursor.slice(0, -1) })).error?.code, RpcError.InvalidParams)

  const templates = (await call('resources/templates/list')).result as { resourceTemplates: Array<{ uriTemplate: string }>, nextCursor?: string }
  t.same(templates.resourceTemplates.map(r => r.uriTemplate), ['test://item/{id}', 'test://free/{x}'])
  t.equal(templates.nextCursor, undefined)
  t.equal((await call('resources/templates/list', { cursor: 7 })).error?.code, RpcError.InvalidParams)

  t.same((await call('resources/read', { uri: 'test://a' })).result, { contents: [{ uri: 'test://a', text: 'A' }] })
  t.same((await call('resources/read', { uri: 'test://c' })).result, { contents: [{ uri: 'test://c', blob: 'Qw==' }] })
  t.same((await call('resources/read', { uri: 'test://item/2' })).result, { contents: [{ uri: 'test://item/2', text: 'item 2' }] })
  t.same(seen.reads, [session], 'the reader learns the session')

  // MCP resources "Error Handling": -32002 with the URI.
  for (const uri of ['test://nothing', 'test://item/404', 'test://item/a/b', 'file:///etc/passwd']) {
    t.same((await call('resources/read', { uri })).error, { code: RESOURCE_NOT_FOUND, message: 'Resource not found', data: { uri } }, uri)
  }
  for (const params of [{}, { uri: 42 }, { uri: ['test://a'] }, { uri: `test://${'a'.repeat(5000)}` }]) {
    t.equal((await call('resources/read', params)).error?.code, RpcError.InvalidParams, JSON.stringify(params).slice(0, 40))
  }
  t.ok((await call('resources/read', { uri: 'test://b' })).result, 'still serving')
})

t.test('resources/subscribe and unsubscribe: per session, known URIs only', async t => {
  const { call } = await featuresApp(t)
  t.same((await call('resources/subscribe', { uri: 'test://a' })).result, {})
  t.same((await call('resources/subscribe', { uri: 'test://item/7' })).result, {}, 'a URI a template serves')
  t.same((await call('resources/subscribe', { uri: 'test://nothing' })).error, { code: RESOURCE_NOT_FOUND, message: 'Resource not found', data: { uri: 'test://nothing' } })
  t.equal((await call('resources/subscribe', { uri: 5 })).error?.code, RpcError.InvalidParams)
  t.equal((await call('resources/subscribe', {})).error?.code, RpcError.InvalidParams)
  t.same((await call('resources/unsubscribe', { uri: 'test://a' })).result, {})
  t.same((await call('resources/unsubscribe', { uri: 'test://never' })).result, {}, 'unsubscribing from what was never watched is fine')
  t.equal((await call('resources/unsubscribe', { uri: null })).error?.code, RpcError.InvalidParams)
  for (let i = 0; i < 99; i++) await call('resources/subscribe', { uri: `test://free/${i}` })
  const over = await call('resources/subscribe', { uri: 'test://free/one-too-many' })
  t.equal(over.error?.code, RpcError.InvalidParams)
  t.match(over.error?.message, /at most 100 resources/)
})

t.test('resources/subscribe without a session (stateless) is refused', async t => {
  const { call } = await featuresApp(t, { stateless: true })
  t.equal((await call('resources/subscribe', { uri: 'test://a' })).error?.code, RpcError.InvalidRequest)
  t.equal((await call('resources/unsubscribe', { uri: 'test://a' })).error?.code, RpcError.InvalidRequest)
  t.ok((await call('resources/read', { uri: 'test://a' })).result, 'reading needs no session')
})

t.test('completion/complete: prompt arguments and template variables, context passed on, at most 100 values', async t => {
  const { call, seen } = await featuresApp(t)
  t.same((await call('completion/complete', { ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'who', value: 'b' } })).result,
    { completion: { values: ['bob'], total: 1, hasMore: false } })
  t.same((await call('completion/complete', { ref: { type: 'ref/resource', uri: 'test://item/{id}' }, argument: { name: 'id', value: '1' }, context: { arguments: { other: 'x' } } })).result,
    { completion: { values: ['1', '10'], total: 2, hasMore: false } })
  t.same(seen.completions?.map(a => ({ ...(a as object) })), [{}, { other: 'x' }], 'context.arguments reach the completion function')
  const many = (await call('completion/complete', { ref: { type: 'ref/prompt', name: 'many' }, argument: { name: 'n', value: '' } })).result as { completion: { values: string[], total: number, hasMore: boolean } }
  t.equal(many.completion.values.length, 100)
  t.equal(many.completion.total, 150)
  t.equal(many.completion.hasMore, true)
  t.same((await call('completion/complete', { ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'mood', value: '' } })).result,
    { completion: { values: [], total: 0, hasMore: false } }, 'an argument without a completion function has no suggestions')
  t.same((await call('completion/complete', { ref: { type: 'ref/resource', uri: 'test://free/{x}' }, argument: { name: 'x', value: '' } })).result,
    { completion: { values: [], total: 0, hasMore: false } })

  const hostile: unknown[] = [
    { ref: { type: 'ref/prompt', name: 'nope' }, argument: { name: 'who', value: '' } },
    { ref: { type: 'ref/resource', uri: 'test://unknown/{x}' }, argument: { name: 'x', value: '' } },
    { ref: { type: 'ref/resource', uri: 'test://item/1' }, argument: { name: 'id', value: '' } },
    { ref: { type: 'ref/tool', name: 'echo' }, argument: { name: 'x', value: '' } },
    { ref: 'greet', argument: { name: 'who', value: '' } },
    { argument: { name: 'who', value: '' } },
    { ref: { type: 'ref/prompt', name: 'greet' } },
    { ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'nobody', value: '' } },
    { ref: { type: 'ref/resource', uri: 'test://item/{id}' }, argument: { name: 'nobody', value: '' } },
    { ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'who', value: 3 } },
    { ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'who', value: 'x'.repeat(10_000) } },
    { ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: '', value: '' } },
    { ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'who', value: '' }, context: 'x' },
    { ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'who', value: '' }, context: { arguments: { a: 1 } } },
    { ref: { type: 'ref/resource', uri: 42 }, argument: { name: 'x', value: '' } }
  ]
  for (const params of hostile) t.equal((await call('completion/complete', params)).error?.code, RpcError.InvalidParams, JSON.stringify(params).slice(0, 80))
  t.ok((await call('completion/complete', { ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'who', value: '' } })).result, 'still serving')
})

t.test('registration mistakes fail at once, with the plugin name', async t => {
  const app = Fastify()
  await app.register(mcp, { auth: false })
  t.teardown(async () => { await app.close() })
  t.throws(() => app.mcpPrompt({ name: 'bad name' }, () => ({ messages: [] })), /^mcp: prompt name/)
  t.throws(() => app.mcpResource({ uri: 'relative', name: 'x' }, () => ({ contents: [] })), /^mcp: resource URI/)
  t.throws(() => app.mcpResourceTemplate({ uriTemplate: 'test://{a*}', name: 'x' }, () => ({ contents: [] })), /^mcp: URI template/)
})
