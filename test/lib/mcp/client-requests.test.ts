import t from 'tap'
import {
  ClientCapabilityBit, ClientRequestError, MemoryClientRequestRouter, RedisClientRequestRouter,
  clientCapabilitiesOf, clientCapabilityBits, invalidAnswer, newClientRequestId
} from '../../../lib/mcp/client-requests.js'
import { RedisServer, sharedRedis, until } from '../../helpers/redis-server.js'

t.test('client capabilities are kept as bits, and read back in the SDK\'s shape', async t => {
  const cases: Array<[unknown, number, unknown]> = [
    [undefined, 0, {}],
    ['all', 0, {}],
    [{}, 0, {}],
    // 2025-11-25 client "Elicitation": an empty object is form mode (earlier clients declared just that).
    [{ elicitation: {} }, ClientCapabilityBit.ElicitationForm, { elicitation: { form: {} } }],
    [{ elicitation: { url: {} } }, ClientCapabilityBit.ElicitationUrl, { elicitation: { url: {} } }],
    [{ elicitation: { form: {}, url: {} } }, 3, { elicitation: { form: {}, url: {} } }],
    [{ elicitation: true, sampling: [] }, 0, {}],
    [{ sampling: { context: {}, tools: {} } }, 4 | 8 | 16, { sampling: { tools: {}, context: {} } }],
    [{ sampling: {} }, 4, { sampling: {} }],
    [{ roots: {} }, 32, { roots: {} }],
    [{ roots: { listChanged: true } }, 96, { roots: { listChanged: true } }],
    [{ experimental: { x: {} }, tasks: {} }, 0, {}]
  ]
  for (const [declared, bits, shape] of cases) {
    t.equal(clientCapabilityBits(declared), bits, JSON.stringify(declared))
    t.same(clientCapabilitiesOf(bits), shape)
  }
  t.equal(clientCapabilitiesOf(3), clientCapabilitiesOf(3), 'one shared object per combination')
  t.ok(Object.isFrozen(clientCapabilitiesOf(3)))
})

t.test('answers are checked against the kind of request', async t => {
  t.equal(invalidAnswer('elicit-form', { action: 'accept', content: { a: 'x', b: 2, c: true, d: ['x', 'y'] } }), undefined, 'primitives and string arrays (multi-select)')
  t.equal(invalidAnswer('elicit-form', { action: 'decline' }), undefined)
  t.equal(invalidAnswer('elicit-form', { action: 'cancel', content: null }), undefined)
  t.equal(invalidAnswer('elicit-url', { action: 'accept' }), undefined)
  t.match(invalidAnswer('elicit-form', { action: 'accept', content: { a: [1] } }), /flat object/)
  t.match(invalidAnswer('elicit-form', { action: 'accept' }), /needs content/)
  t.match(invalidAnswer('elicit-url', null), /action accept, decline or cancel/)
  t.equal(invalidAnswer('sample', { role: 'assistant', content: { type: 'text', text: 'x' }, model: 'm' }), undefined)
  t.match(invalidAnswer('sample', { role: 'assistant', content: [{ type: 'tool_use', id: 'u', name: 'n', input: {} }], model: 'm' }), /sampling result/, 'tool use only when the request offered tools')
  t.equal(invalidAnswer('sample-tools', { role: 'assistant', content: [{ type: 'tool_use', id: 'u', name: 'n', input: {} }], model: 'm' }), undefined)
  t.match(invalidAnswer('sample', { role: 'robot', content: { type: 'text', text: 'x' }, model: 'm' }), /sampling result/)
})

t.test('request ids are random and prefixed', async t => {
  const a = newClientRequestId()
  t.match(a, /^s-[A-Za-z0-9_-]{16}$/)
  t.not(a, newClientRequestId())
})

t.test('MemoryClientRequestRouter: one answer per request, from its session only', async t => {
  const router = new MemoryClientRequestRouter()
  const got: unknown[] = []
  await router.expect('s-1', 'sess', 'elicit-form', 1000, { resolve: r => got.push(r), reject: e => got.push(e) })
  t.same(router.answer('other', { id: 's-1', result: { action: 'cancel' } }), { accepted: false, code: -32600, message: 'Invalid Request: this session has no pending request with id "s-1"' })
  t.same(router.answer('sess', { id: 's-1', result: { action: 'cancel' } }), { accepted: true })
  t.same(router.answer('sess', { id: 's-1', result: { action: 'cancel' } }).accepted, false)
  t.same(got, [{ action: 'cancel' }])
  await router.expect('s-2', 'sess', 'elicit-form', 1000, { resolve: r => got.push(r), reject: e => got.push(e) })
  t.equal(router.forget('s-2'), true)
  t.equal(router.forget('s-2'), false)
  router.close()
})

t.test('RedisClientRequestRouter: the answer reaches the replica that waits; a store that cannot record the request refuses to send it', async t => {
  const server = await RedisServer.start(t)
  const linkA = await sharedRedis(t, server, 'router:')
  const linkB = await sharedRedis(t, server, 'router:')
  const a = new RedisClientRequestRouter(linkA)
  const b = new RedisClientRequestRouter(linkB)
  t.teardown(() => { a.close(); b.close() })
  await new Promise(resolve => setTimeout(resolve, 50)) // subscribed
  const got: unknown[] = []
  await a.expect('s-9', 'sess', 'elicit-form', 5000, { resolve: r => got.push(r), reject: e => got.push(e) })
  t.ok(await linkA.client.pttl('router:pending:s-9') > 4000, 'known in Redis, for as long as the request waits')
  t.same(await b.answer('intruder', { id: 's-9', result: { action: 'cancel' } }), { accepted: false, code: -32600, message: 'Invalid Request: this session has no pending request with id "s-9"' })
  t.same(await b.answer('sess', { id: 7, result: {} }), { accepted: false, code: -32600, message: 'Invalid Request: this session has no pending request with id 7' })
  const both = await Promise.all([b.answer('sess', { id: 's-9', result: { action: 'decline' } }), a.answer('sess', { id: 's-9', result: { action: 'cancel' } })])
  t.same(both.map(o => o.accepted).sort(), [false, true], 'two answers at once: exactly one is taken')
  await until('the answer reaches A', () => got.length === 1)
  t.equal(await linkA.client.exists('router:pending:s-9'), 0)
  // Malformed, taken on B: A's tool learns it.
  await a.expect('s-10', 'sess', 'sample', 5000, { resolve: r => got.push(r), reject: e => got.push(e) })
  t.match(await b.answer('sess', { id: 's-10', result: { model: 'm' } }), { accepted: false, code: -32602 })
  await until('the verdict reaches A', () => got.length === 2)
  t.match(got[1], { reason: 'invalid-result' })
  t.type(got[1], ClientRequestError)
  // Redis refusing commands: the request is not sent.
  linkA.client.disconnect()
  await until('A\'s command link is down', () => !linkA.available)
  await t.rejects(a.expect('s-11', 'sess', 'elicit-form', 5000, { resolve: () => {}, reject: () => {} }), { name: 'ClientRequestError', reason: 'unavailable' })
  t.equal(a.forget('s-11'), false, 'nothing left waiting')
})
