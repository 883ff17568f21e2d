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
    ['JSON Schema instead of zod', { name: 'n', description: 'd', inputSchema: { type: 'object' } }, /needs a zod inputSchema/],
    ['no input schema', { name: 'n', description: 'd' }, /needs a zod inputSchema/],
    ['non-zod output schema', { name: 'n', description: 'd', inputSchema: input, outputSchema: { type: 'object' } }, /outputSchema must be a zod schema/],
    ['non-object input schema', { name: 'n', description: 'd', inputSchema: z.string() }, /^mcp: tool "n" inputSchema must be an object schema/],
    ['array input schema', { name: 'n', description: 'd', inputSchema: z.array(z.string()) }, /inputSchema must be an object schema/],
    ['non-object output schema', { name: 'n', description: 'd', inputSchema: input, outputSchema: z.number() }, /outputSchema must be an object schema/],
    ['a schema zod cannot convert (duplicate ids)', { name: 'n', description: 'd', inputSchema: z.object({ a: z.string().meta({ id: 'X' }), b: z.number().meta({ id: 'X' }) }) }, /^mcp: tool "n" inputSchema cannot be expressed as JSON Schema: Duplicate schema id/],
    ['no handler', { name: 'n', description: 'd', inputSchema: input }, /needs a handler function/, 'not a function']
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
