import t from 'tap'
import Fastify from 'fastify'
import { paginate, cursorOffset } from '../../../lib/mcp/pagination.js'
import { PromptRegistry } from '../../../lib/mcp/prompts.js'
import { ResourceNotFoundError, ResourceRegistry, uriParam, RESOURCE_NOT_FOUND, MAX_URI_LENGTH } from '../../../lib/mcp/resources.js'
import { UriTemplate } from '../../../lib/mcp/uri-template.js'
import { completionResult, stringArguments, MAX_ARGUMENT_LENGTH, MAX_ARGUMENTS } from '../../../lib/mcp/completion.js'
import { RpcError, RpcFailure } from '../../../lib/mcp/protocol.js'

const ctx = { auth: null, sessionId: 's1', log: Fastify().log, signal: new AbortController().signal }

function rpcCode (fn: () => unknown): number | undefined {
  try {
    fn()
  } catch (err) {
    return err instanceof RpcFailure ? err.code : -1
  }
  return undefined
}

t.test('pagination: pages follow the opaque cursor to the end, and every bad cursor is -32602', async t => {
  const items = Array.from({ length: 7 }, (_, i) => i)
  const first = paginate(items, undefined, 3)
  t.same(first.items, [0, 1, 2])
  t.type(first.nextCursor, 'string')
  t.notMatch(first.nextCursor as string, /^\d+$/, 'the cursor is not a bare offset')
  const second = paginate(items, first.nextCursor, 3)
  t.same(second.items, [3, 4, 5])
  const last = paginate(items, second.nextCursor, 3)
  t.same(last.items, [6])
  t.equal(last.nextCursor, undefined, 'no cursor after the last page')
  t.same(paginate(items, undefined, 10), { items, nextCursor: undefined }, 'one page when the list fits')

  const bad = [42, null, '', 'garbage', 'x'.repeat(65), Buffer.from('p1.0').toString('base64url'), Buffer.from('p1.99').toString('base64url'),
    Buffer.from('p1.-1').toString('base64url'), `${first.nextCursor as string}=`, { offset: 3 }]
  for (const cursor of bad) t.equal(rpcCode(() => cursorOffset(cursor, items.length)), RpcError.InvalidParams, `cursor ${JSON.stringify(cursor)}`)
})

t.test('uri templates: level 1 and {+var} match and expand; unsupported expressions are refused at registration', async t => {
  const tpl = new UriTemplate('news://sentiment/{ticker}')
  t.same(tpl.variables, ['ticker'])
  t.same(tpl.match('news://sentiment/AAPL'), { ticker: 'AAPL' })
  t.same(tpl.match('news://sentiment/CRYPTO%3ABTC'), { ticker: 'CRYPTO:BTC' }, 'percent-decoded')
  t.same(tpl.match('news://sentiment/CRYPTO:BTC'), { ticker: 'CRYPTO:BTC' })
  t.equal(tpl.match('news://sentiment/'), undefined, 'a variable is never empty')
  t.equal(tpl.match('news://sentiment/a/b'), undefined, '{var} does not cross a slash')
  t.equal(tpl.match('news://sentiment/%E0%A4%A'), undefined, 'a broken escape matches nothing')
  t.equal(tpl.match('xnews://sentiment/AAPL'), undefined, 'anchored')
  t.equal(tpl.expand({ ticker: 'CRYPTO:BTC' }), 'news://sentiment/CRYPTO%3ABTC')
  const two = new UriTemplate('file:///{dir}/{+path}.txt')
  t.same(two.match('file:///docs/a/b/c.txt'), { dir: 'docs', path: 'a/b/c' })
  t.equal(two.expand({ dir: 'd e', path: 'a/b c' }), 'file:///d%20e/a/b%20c.txt')
  t.equal(two.expand({}), 'file:////.txt', 'a missing value expands to nothing')
  t.same(new UriTemplate('test://a.b/{id}').match('test://aXb/1'), undefined, 'literal parts are not patterns')
  for (const bad of ['news://{?q}', 'news://{a:3}', 'news://{a*}', 'news://{a}/{a}', 'news://{a', 'news://a}', 'news://fixed']) {
    t.throws(() => new UriTemplate(bad), /^mcp: URI template/, bad)
  }
})

t.test('prompt registry: definitions are checked, listed with title and icons, and arguments enforced', async t => {
  const prompts = new PromptRegistry()
  const icons = [{ src: 'https://example.com/i.png', mimeType: 'image/png', sizes: ['48x48'] }]
  prompts.register({
    name: 'brief',
    title: 'Brief',
    description: 'A brief',
    icons,
    arguments: [{ name: 'ticker', title: 'Ticker', description: 'The symbol', required: true, complete: () => [] }, { name: 'topic' }]
  }, args => ({ messages: [{ role: 'user', content: { type: 'text', text: JSON.stringify(args) } }] }))
  prompts.register({ name: 'plain' }, () => ({ messages: [] }))
  t.equal(prompts.size, 2)
  t.same(prompts.list(), [
    { name: 'brief', title: 'Brief', description: 'A brief', icons, arguments: [{ name: 'ticker', title: 'Ticker', description: 'The symbol', required: true }, { name: 'topic' }] },
    { name: 'plain' }
  ])
  t.equal(prompts.list(), prompts.list(), 'the list is built once')

  const rendered = await prompts.render({ name: 'brief', arguments: { ticker: 'AAPL' } }, ctx)
  t.same(JSON.parse((rendered.messages[0]?.content as { text: string }).text), { ticker: 'AAPL' })
  const refusals: Array<[unknown, RegExp]> = [
    [{ name: 'nope' }, /Unknown prompt: nope/],
    [{}, /prompt name/],
    [{ name: 'brief' }, /needs argument ticker/],
    [{ name: 'brief', arguments: { ticker: '  ' } }, /needs argument ticker/],
    [{ name: 'brief', arguments: { ticker: 'A', other: 'x' } }, /has no argument other/],
    [{ name: 'brief', arguments: { ticker: 42 } }, /arguments.ticker must be a string/],
    [{ name: 'brief', arguments: ['AAPL'] }, /must be an object of strings/],
    [{ name: 'brief', arguments: { ticker: 'x'.repeat(MAX_ARGUMENT_LENGTH + 1) } }, /longer than/]
  ]
  for (const [params, message] of refusals) {
    await t.rejects(prompts.render(params as Record<string, unknown>, ctx), { code: RpcError.InvalidParams, message }, JSON.stringify(params).slice(0, 60))
  }

  const bad: Array<[unknown, unknown, RegExp]> = [
    [null, () => ({ messages: [] }), /definition object/],
    [{ name: 'has space' }, () => ({ messages: [] }), /is invalid/],
    [{ name: 'brief' }, () => ({ messages: [] }), /already registered/],
    [{ name: 'x' }, 'not a function', /handler function/],
    [{ name: 'x', arguments: [{ name: '' }] }, () => ({ messages: [] }), /without a name/],
    [{ name: 'x', arguments: [{ name: 'a' }, { name: 'a' }] }, () => ({ messages: [] }), /twice/],
    [{ name: 'x', arguments: [{ name: 'a', complete: 'no' }] }, () => ({ messages: [] }), /complete must be a function/],
    [{ name: 'x', icons: [{ src: 'javascript:alert(1)' }] }, () => ({ messages: [] }), /^mcp: prompt "x" icons \[0\] src must be/]
  ]
  for (const [def, handler, message] of bad) t.throws(() => prompts.register(def as never, handler as never), message)
})

t.test('resource registry: plain resources before templates, -32002 for anything else', async t => {
  const resources = new ResourceRegistry()
  resources.register({ uri: 'test://static', name: 'static', title: 'Static', mimeType: 'text/plain', size: 5, icons: [{ src: 'data:image/png;base64,AA==' }], annotations: { priority: 1 }, description: 'd' },
    uri => ({ contents: [{ uri, text: 'hello' }] }))
  resources.register({ uri: 'test://item/special', name: 'special' }, uri => ({ contents: [{ uri, text: 'special' }] }))
  resources.registerTemplate({ uriTemplate: 'test://item/{id}', name: 'item', title: 'Item', description: 'An item', mimeType: 'text/plain', icons: [{ src: 'data:image/png;base64,AA==' }], annotations: { audience: ['user'] }, complete: { id: () => ['1', '2'] } },
    (uri, { id }) => ({ contents: [{ uri, text: `item ${id as string}` }] }))
  resources.registerTemplate({ uriTemplate: 'test://any/{+rest}', name: 'any' }, (uri, { rest }) => ({ contents: [{ uri, text: rest as string }] }))

  t.same(resources.list().map(r => r.uri), ['test://static', 'test://item/special'])
  t.equal(resources.list()[0]?.size, 5)
  t.same(resources.listTemplates().map(r => r.uriTemplate), ['test://item/{id}', 'test://any/{+rest}'])
  t.equal(resources.listTemplates()[0]?.title, 'Item')
  t.equal(resources.list(), resources.list(), 'lists are built once')
  t.equal(resources.listTemplates(), resources.listTemplates())

  t.same(await resources.read('test://static', ctx), { contents: [{ uri: 'test://static', text: 'hello' }] })
  t.same(await resources.read('test://item/special', ctx), { contents: [{ uri: 'test://item/special', text: 'special' }] }, 'a plain resource wins over a template')
  t.same(await resources.read('test://item/7', ctx), { contents: [{ uri: 'test://item/7', text: 'item 7' }] })
  t.same(await resources.read('test://any/a/b', ctx), { contents: [{ uri: 'test://any/a/b', text: 'a/b' }] })
  await t.rejects(resources.read('test://nothing', ctx), { code: RESOURCE_NOT_FOUND, message: 'Resource not found', data: { uri: 'test://nothing' } })
  t.ok(new ResourceNotFoundError('x') instanceof RpcFailure)
  t.ok(resources.template('test://item/{id}'))
  t.equal(resources.template('test://item/1'), undefined)

  const bad: Array<[() => void, RegExp]> = [
    [() => resources.register(null as never, () => ({ contents: [] })), /definition object/],
    [() => resources.register({ uri: 'not a uri', name: 'x' }, () => ({ contents: [] })), /not an absolute URI/],
    [() => resources.register({ uri: `test://${'a'.repeat(MAX_URI_LENGTH)}`, name: 'x' }, () => ({ contents: [] })), /longer than/],
    [() => resources.register({ uri: 'test://x', name: '' }, () => ({ contents: [] })), /needs a name/],
    [() => resources.register({ uri: 'test://static', name: 'x' }, () => ({ contents: [] })), /already registered/],
    [() => resources.register({ uri: 'test://y', name: 'y' }, null as never), /reader function/],
    [() => resources.registerTemplate(null as never, () => ({ contents: [] })), /definition object/],
    [() => resources.registerTemplate({ uriTemplate: 42 as never, name: 'x' }, () => ({ contents: [] })), /uriTemplate string/],
    [() => resources.registerTemplate({ uriTemplate: 'test://item/{id}', name: 'x' }, () => ({ contents: [] })), /already registered/],
    [() => resources.registerTemplate({ uriTemplate: 'test://t/{id}', name: 'x' }, 'no' as never), /reader function/],
    [() => resources.registerTemplate({ uriTemplate: 'test://t/{id}', name: 'x', complete: { other: () => [] } }, () => ({ contents: [] })), /no variable \{other\}/],
    [() => resources.registerTemplate({ uriTemplate: 'test://t/{id}', name: 'x', complete: { id: 'no' as never } }, () => ({ contents: [] })), /must be a function/],
    [() => resources.register({ uri: 'test://i', name: 'i', icons: [{ src: 'file:///etc/x.png' }] }, () => ({ contents: [] })), /^mcp: resource "test:\/\/i" icons \[0\] src/],
    [() => resources.registerTemplate({ uriTemplate: 'test://i/{x}', name: 'i', icons: 'no' as never }, () => ({ contents: [] })), /^mcp: resource template "test:\/\/i\/\{x\}" icons must be an array/]
  ]
  for (const [fn, message] of bad) t.throws(fn, message)

  t.equal(uriParam({ uri: 'test://a' }), 'test://a')
  for (const params of [undefined, {}, { uri: '' }, { uri: 7 }, { uri: 'x'.repeat(MAX_URI_LENGTH + 1) }]) {
    t.equal(rpcCode(() => uriParam(params as Record<string, unknown>)), RpcError.InvalidParams)
  }
})

t.test('completion results: at most 100 values, with total and hasMore', async t => {
  const many = Array.from({ length: 250 }, (_, i) => `v${i}`)
  const capped = completionResult(many)
  t.equal(capped.completion.values.length, 100)
  t.equal(capped.completion.total, 250)
  t.equal(capped.completion.hasMore, true)
  t.same(completionResult(['a', 'b']), { completion: { values: ['a', 'b'], total: 2, hasMore: false } })
  t.same(completionResult({ values: ['a'], total: 40, hasMore: true }), { completion: { values: ['a'], total: 40, hasMore: true } }, 'the function\'s own figures are kept')
  t.same(completionResult({ values: many }), { completion: { values: many.slice(0, 100), total: 250, hasMore: true } })
  t.same(completionResult({ values: ['x'] }), { completion: { values: ['x'], hasMore: false } })

  t.same(stringArguments(undefined, 'a'), {})
  t.same({ ...stringArguments({ x: 'y' }, 'a') }, { x: 'y' })
  const tooMany = Object.fromEntries(Array.from({ length: MAX_ARGUMENTS + 1 }, (_, i) => [`k${i}`, 'v']))
  t.equal(rpcCode(() => stringArguments(tooMany, 'a')), RpcError.InvalidParams)
  t.equal(rpcCode(() => stringArguments('x', 'a')), RpcError.InvalidParams)
})
