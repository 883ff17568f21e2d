import t from 'tap'
import { z } from 'zod'
import { ToolRegistry, type ToolDefinition } from '../../../lib/mcp/tools.js'

const handler = (): { content: [] } => ({ content: [] })
const input = z.object({ q: z.string() })

function registering (def: unknown, fn: unknown = handler): () => void {
  return () => { new ToolRegistry().register(def as ToolDefinition, fn as typeof handler) }
}

t.test('a well-formed tool is listed as MCP describes it (tools "Tool")', async t => {
  const registry = new ToolRegistry()
  registry.register({
    name: 'search.news_v2-x',
    title: 'Search',
    description: 'Finds news',
    inputSchema: z.object({ q: z.string().describe('query'), n: z.number().int().default(5), m: z.array(z.number().int().min(1)).optional() }),
    outputSchema: z.object({ hits: z.array(z.string()) }),
    annotations: { readOnlyHint: true }
  }, handler)
  registry.register({ name: 'plain', description: 'No extras', inputSchema: z.object({}) }, handler)
  t.equal(registry.size, 2)
  const [full, plain] = registry.list().tools
  t.same(full, {
    name: 'search.news_v2-x',
    title: 'Search',
    description: 'Finds news',
    // zod's implicit ±(2^53 − 1) integer bounds are dropped; a bound the tool set (minimum 1) stays, also inside arrays.
    inputSchema: { type: 'object', properties: { q: { type: 'string', description: 'query' }, n: { type: 'integer', default: 5 }, m: { type: 'array', items: { type: 'integer', minimum: 1 } } }, required: ['q'] },
    outputSchema: { type: 'object', properties: { hits: { type: 'array', items: { type: 'string' } } }, required: ['hits'], additionalProperties: false },
    annotations: { readOnlyHint: true }
  })
  t.notOk('$schema' in (full?.inputSchema ?? {}), 'no $schema: clients validate with their own dialect')
  t.same(Object.keys(plain ?? {}), ['name', 'description', 'inputSchema'], 'no empty optional members')
  t.equal(registry.get('plain')?.definition.name, 'plain')
  t.equal(registry.get('missing'), undefined)
})

t.test('the list is cached, and rebuilt when a tool is added', async t => {
  const registry = new ToolRegistry()
  registry.register({ name: 'a', description: 'A', inputSchema: input }, handler)
  const first = registry.list()
  t.equal(registry.list(), first, 'the same object while nothing changes')
  registry.register({ name: 'b', description: 'B', inputSchema: input }, handler)
  t.same(registry.list().tools.map(x => x.name), ['a', 'b'])
})

t.test('a duplicate name is refused', async t => {
  const registry = new ToolRegistry()
  registry.register({ name: 'dup', description: 'First', inputSchema: input }, handler)
  t.throws(() => registry.register({ name: 'dup', description: 'Second', inputSchema: input }, handler), /^mcp: tool "dup" is already registered$/)
  t.equal(registry.size, 1)
})

t.test('malformed definitions are refused at registration', async t => {
  const cases: Array<[string, unknown, RegExp, unknown?]> = [
    ['null definition', null, /needs a definition object/],
    ['a string definition', 'echo', /needs a definition object/],
    ['no name', { description: 'd', inputSchema: input }, /tool name undefined is invalid/],
    ['empty name', { name: '', description: 'd', inputSchema: input }, /tool name "" is invalid/],
    ['space in the name', { name: 'get news', description: 'd', inputSchema: input }, /is invalid/],
    ['slash in the name', { name: 'news/get', description: 'd', inputSchema: input }, /is invalid/],
    ['non-ASCII name', { name: 'nouvelles_é', description: 'd', inputSchema: input }, /is invalid/],
    ['129-character name', { name: 'x'.repeat(129), description: 'd', inputSchema: input }, /is invalid/],
    ['no description', { name: 'n', inputSchema: input }, /^mcp: tool "n" needs a description$/],
    ['blank description', { name: 'n', description: '  ', inputSchema: input }, /needs a description/],
    ['no input schema', { name: 'n', description: 'd' }, /^mcp: tool "n" needs an inputSchema \(zod 4, JSON Schema or TypeBox\)$/],
    ['a string as input schema', { name: 'n', description: 'd', inputSchema: 'object' }, /^mcp: tool "n" inputSchema must be a zod 4 schema or a JSON Schema object/],
    ['an array as output schema', { name: 'n', description: 'd', inputSchema: input, outputSchema: [] }, /^mcp: tool "n" outputSchema must be a zod 4 schema or a JSON Schema object/],
    ['a zod 3 schema', { name: 'n', description: 'd', inputSchema: { _def: { typeName: 'ZodObject' }, safeParse: () => ({}) } }, /^mcp: tool "n" inputSchema is a zod 3 schema; use zod 4/],
    ['a JSON Schema of a string', { name: 'n', description: 'd', inputSchema: { type: 'string' } }, /^mcp: tool "n" inputSchema must be an object schema/],
    ['a JSON Schema ajv refuses', { name: 'n', description: 'd', inputSchema: { type: 'object', properties: { a: { type: 'no-such-type' } } } }, /^mcp: tool "n" inputSchema is not a valid JSON Schema: /],
    ['a JSON output schema of an array', { name: 'n', description: 'd', inputSchema: input, outputSchema: { type: 'array' } }, /^mcp: tool "n" outputSchema must be an object schema/],
    ['scopes not an array', { name: 'n', description: 'd', inputSchema: input, scopes: 'news:read' }, /^mcp: tool "n" scopes must be an array of OAuth scope tokens/],
    ['a scope with a space', { name: 'n', description: 'd', inputSchema: input, scopes: ['news read'] }, /scopes must be an array of OAuth scope tokens/],
    ['a scope with a quote', { name: 'n', description: 'd', inputSchema: input, scopes: ['a"b'] }, /scopes must be an array of OAuth scope tokens/],
    ['an empty scope', { name: 'n', description: 'd', inputSchema: input, scopes: [''] }, /scopes must be an array of OAuth scope tokens/],
    ['non-object input schema', { name: 'n', description: 'd', inputSchema: z.string() }, /^mcp: tool "n" inputSchema must be an object schema/],
    ['array input schema', { name: 'n', description: 'd', inputSchema: z.array(z.string()) }, /inputSchema must be an object schema/],
    ['non-object output schema', { name: 'n', description: 'd', inputSchema: input, outputSchema: z.number() }, /outputSchema must be an object schema/],
    ['a schema zod cannot convert (duplicate ids)', { name: 'n', description: 'd', inputSchema: z.object({ a: z.string().meta({ id: 'X' }), b: z.number().meta({ id: 'X' }) }) }, /^mcp: tool "n" inputSchema cannot be expressed as JSON Schema: Duplicate schema id/],
    ['no handler', { name: 'n', description: 'd', inputSchema: input }, /needs a handler function/, 'not a function'],
    ['a blank title', { name: 'n', title: ' ', description: 'd', inputSchema: input }, /^mcp: tool "n" title must be a non-empty string$/],
    ['a number as title', { name: 'n', title: 7, description: 'd', inputSchema: input }, /title must be a non-empty string/],
    ['icons not an array', { name: 'n', description: 'd', inputSchema: input, icons: { src: 'https://x.test/i.png' } }, /^mcp: tool "n" icons must be an array/],
    ['an icon without src', { name: 'n', description: 'd', inputSchema: input, icons: [{ mimeType: 'image/png' }] }, /^mcp: tool "n" icons \[0\] must be \{ src, mimeType\?, sizes\?, theme\? \}/],
    ['an icon with an unknown member', { name: 'n', description: 'd', inputSchema: input, icons: [{ src: 'https://x.test/i.png', size: 4 }] }, /icons \[0\] must be/],
    ['an icon with a bad theme', { name: 'n', description: 'd', inputSchema: input, icons: [{ src: 'https://x.test/i.png', theme: 'blue' }] }, /icons \[0\] must be/],
    ['an icon on a file: URI', { name: 'n', description: 'd', inputSchema: input, icons: [{ src: 'https://x.test/a.png' }, { src: 'file:///etc/passwd' }] }, /^mcp: tool "n" icons \[1\] src must be an https, http or data: URI$/],
    ['an icon on a javascript: URI', { name: 'n', description: 'd', inputSchema: input, icons: [{ src: 'javascript:alert(1)' }] }, /src must be an https, http or data: URI/],
    ['an icon src that is no URI', { name: 'n', description: 'd', inputSchema: input, icons: [{ src: 'icon.png' }] }, /src must be an https, http or data: URI/],
    ['a JSON Schema of an unknown dialect', { name: 'n', description: 'd', inputSchema: { $schema: 'http://json-schema.org/draft-04/schema#', type: 'object' } }, /^mcp: tool "n" inputSchema names a JSON Schema dialect this server cannot validate \("http:\/\/json-schema.org\/draft-04\/schema#"\); use draft 2020-12 or draft-07$/],
    ['a $schema that is no string', { name: 'n', description: 'd', inputSchema: { $schema: 7, type: 'object' } }, /names a JSON Schema dialect this server cannot validate \(7\)/]
  ]
  for (const [what, def, message, fn] of cases) {
    t.throws(registering(def, fn ?? handler), message, what)
  }
})

t.test('128 characters of the allowed alphabet are a valid name', async t => {
  const registry = new ToolRegistry()
  const name = 'Az09_.-'.repeat(18).slice(0, 128)
  registry.register({ name, description: 'd', inputSchema: input }, handler)
  t.equal(registry.get(name)?.definition.name, name)
})

t.test('a plain JSON Schema (Fastify style) is listed as given and validated with ajv', async t => {
  const registry = new ToolRegistry()
  const inputSchema = {
    $schema: 'http://json-schema.org/draft-07/schema#',
    type: 'object',
    properties: { email: { type: 'string', format: 'email' }, n: { type: 'integer', minimum: 1, default: 5 } },
    required: ['email'],
    additionalProperties: false
  } as const
  registry.register({ name: 'json', description: 'JSON Schema tool', inputSchema, outputSchema: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] } }, handler)
  const tool = registry.get('json')
  t.same(tool?.definition.inputSchema, inputSchema, 'the schema as written, $schema included')
  t.same(tool?.checkInput({ email: 'a@example.com' }), { success: true, data: { email: 'a@example.com', n: 5 } }, 'defaults filled in, as Fastify does')
  t.same(tool?.checkInput({ email: 'not-an-email' }), { success: false, issues: 'email: must match format "email"' }, 'formats are checked (ajv-formats)')
  t.same(tool?.checkInput({}), { success: false, issues: "(arguments): must have required property 'email'" })
  t.same(tool?.checkInput({ email: 'a@example.com', n: 0 }), { success: false, issues: 'n: must be >= 1' })
  t.equal(tool?.checkOutput?.({ ok: true }).success, true)
  t.same(tool?.checkOutput?.({ ok: 'yes' }), { success: false, issues: 'ok: must be boolean' })
})

t.test('TypeBox schemas (both packages) are JSON Schema: listed without their symbols, validated with ajv, typed by Static<>', async t => {
  const { Type } = await import('@sinclair/typebox')
  const { Type: Type1 } = await import('typebox')
  const registry = new ToolRegistry()
  const seen: Array<{ city: string, days: number }> = []
  registry.register({
    name: 'weather',
    description: 'TypeBox 0.34',
    inputSchema: Type.Object({ city: Type.String({ minLength: 1 }), days: Type.Integer({ minimum: 1, maximum: 7, default: 1 }) }),
    outputSchema: Type.Object({ summary: Type.String() })
  }, (args) => {
    // Static<> types the arguments: these assignments would not compile otherwise.
    const city: string = args.city
    const days: number = args.days
    seen.push({ city, days })
    return { content: [], structuredContent: { summary: `${city} ${days}` } }
  })
  registry.register({ name: 'weather1', description: 'TypeBox 1.x', inputSchema: Type1.Object({ city: Type1.String() }) }, handler)
  const tool = registry.get('weather')
  t.same(tool?.definition.inputSchema, {
    type: 'object',
    properties: { city: { type: 'string', minLength: 1 }, days: { type: 'integer', minimum: 1, maximum: 7, default: 1 } },
    required: ['city', 'days']
  })
  t.equal(Object.getOwnPropertySymbols(tool?.definition.inputSchema).length, 0, 'no TypeBox symbols in what clients see')
  t.same(tool?.checkInput({ city: 'Oslo' }), { success: true, data: { city: 'Oslo', days: 1 } })
  t.same(tool?.checkInput({ city: 'Oslo', days: 9 }), { success: false, issues: 'days: must be <= 7' })
  t.same(tool?.checkOutput?.({ summary: 1 }), { success: false, issues: 'summary: must be string' })
  t.same(registry.get('weather1')?.checkInput({ city: 3 }), { success: false, issues: 'city: must be string' })
  await tool?.handler({ city: 'Oslo', days: 2 }, {} as never)
  t.same(seen, [{ city: 'Oslo', days: 2 }])
})

t.test('scopes: recorded per tool, collected, and used to filter a listing', async t => {
  const registry = new ToolRegistry()
  registry.register({ name: 'open', description: 'No scope of its own', inputSchema: input }, handler)
  t.equal(registry.listPermitted([]), registry.list(), 'while no tool has scopes, everyone sees the one full list')
  registry.register({ name: 'admin', description: 'Needs admin', inputSchema: input, scopes: ['news:admin', 'news:admin'] }, handler)
  registry.register({ name: 'write', description: 'Needs write and admin', inputSchema: input, scopes: ['news:write', 'news:admin'] }, handler)
  t.same(registry.get('admin')?.scopes, ['news:admin'], 'duplicates dropped')
  t.same(registry.scopes().sort(), ['news:admin', 'news:write'])
  t.same(registry.listPermitted(['news:read']).tools.map(x => x.name), ['open'])
  t.same(registry.listPermitted(['news:admin']).tools.map(x => x.name), ['open', 'admin'])
  t.same(registry.listPermitted(['news:write', 'news:admin']).tools.map(x => x.name), ['open', 'admin', 'write'])
  t.equal(registry.listPermitted(['news:admin']), registry.listPermitted(['news:admin']), 'one result per scope set, reused')
  for (let i = 0; i < 70; i++) registry.listPermitted([`s${i}`])
  t.same(registry.listPermitted(['news:admin']).tools.map(x => x.name), ['open', 'admin'], 'the bounded cache evicts, answers stay right')
})

t.test('title and icons are listed as given (MCP 2025-11-25 "Icons")', async t => {
  const registry = new ToolRegistry()
  const icons = [
    { src: 'https://example.com/icon.svg', mimeType: 'image/svg+xml', sizes: ['any'], theme: 'light' as const },
    { src: 'data:image/png;base64,iVBORw0KGgo=', mimeType: 'image/png', sizes: ['48x48'] }
  ]
  registry.register({ name: 'iconic', title: 'Iconic tool', description: 'd', icons, inputSchema: input }, handler)
  t.same(registry.list().tools[0], { name: 'iconic', title: 'Iconic tool', description: 'd', icons, inputSchema: registry.get('iconic')?.definition.inputSchema })
  t.same(registry.get('iconic')?.definition.icons, icons)
})

t.test('a JSON Schema 2020-12 schema is listed untouched ($schema, $defs, additionalProperties) and validated as 2020-12 (SEP-1613)', async t => {
  const registry = new ToolRegistry()
  const inputSchema = {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    $defs: { address: { type: 'object', properties: { street: { type: 'string' }, city: { type: 'string' } }, required: ['city'] } },
    properties: {
      name: { type: 'string' },
      address: { $ref: '#/$defs/address' },
      // 2020-12 only: tuple validation with prefixItems (draft-07 would ignore it).
      point: { type: 'array', prefixItems: [{ type: 'number' }, { type: 'number' }], items: false }
    },
    additionalProperties: false
  } as const
  const outputSchema = { $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object', properties: { ok: { type: 'boolean' } }, unevaluatedProperties: false } as const
  registry.register({ name: 'json2020', description: 'd', inputSchema, outputSchema }, handler)
  const tool = registry.get('json2020')
  t.same(tool?.definition.inputSchema, inputSchema, 'exactly as given')
  t.same(tool?.definition.outputSchema, outputSchema)
  t.same(tool?.checkInput({ name: 'a', address: { city: 'Paris' }, point: [1, 2] }).success, true)
  t.same(tool?.checkInput({ address: {} }), { success: false, issues: "address: must have required property 'city'" }, '$ref into $defs')
  t.same(tool?.checkInput({ point: [1, 2, 3] }), { success: false, issues: 'point: must NOT have more than 2 items' }, 'prefixItems with items: false (2020-12)')
  t.same(tool?.checkInput({ other: 1 }), { success: false, issues: '(arguments): must NOT have additional properties' })
  t.same(tool?.checkOutput?.({ ok: true, extra: 1 }), { success: false, issues: '(arguments): must NOT have unevaluated properties' }, 'unevaluatedProperties (2020-12)')
  // The same schema registered twice (two tools) compiles twice without an "already exists" error.
  registry.register({ name: 'json2020b', description: 'd', inputSchema, outputSchema }, handler)
  t.ok(registry.get('json2020b'))
})

t.test('a zod schema is listed without zod\'s $schema (its dialect is the default one)', async t => {
  const registry = new ToolRegistry()
  registry.register({ name: 'z', description: 'd', inputSchema: input }, handler)
  t.notOk('$schema' in (registry.get('z')?.definition.inputSchema ?? {}))
})
