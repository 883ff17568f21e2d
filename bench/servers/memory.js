// What N idle sessions hold: heap and RSS after a full GC, before and after
// opening them with app.inject (initialize with a token). Run with --expose-gc.
import { buildTarget } from './targets.js'
import { childProtocol } from '../lib/child-protocol.js'
import { PROTOCOL_VERSION, initializeMessage, mcpHeaders, toolsListMessage } from '../lib/mcp-client.js'
import { settledMemoryUsage as settle } from '../lib/memory-usage.js'

let fastify

async function initialize (headers, payload) {
  const res = await fastify.inject({ method: 'POST', url: '/mcp', headers, payload })
  const id = res.headers['mcp-session-id']
  if (res.statusCode !== 200 || typeof id !== 'string') throw new Error(`initialize failed: ${res.statusCode} ${res.body.slice(0, 300)}`)
  return id
}

async function start ({ sessions, token, batch = 50, ...options }) {
  fastify = await buildTarget(options)
  await fastify.ready()
  const headers = mcpHeaders(token)
  const payload = JSON.stringify(initializeMessage())

  // Warm up (code, token cache, key set) with sessions that are then deleted.
  for (let i = 0; i < 20; i++) {
    const id = await initialize(headers, payload)
    const { 'content-type': _, ...noBody } = headers
    const del = await fastify.inject({ method: 'DELETE', url: '/mcp', headers: { ...noBody, 'mcp-session-id': id, 'mcp-protocol-version': PROTOCOL_VERSION } })
    if (del.statusCode >= 300) throw new Error(`DELETE failed: ${del.statusCode} ${del.body.slice(0, 200)}`)
  }
  const before = await settle()
  const ids = new Set()
  for (let opened = 0; opened < sessions; opened += batch) {
    const batchIds = await Promise.all(Array.from({ length: Math.min(batch, sessions - opened) }, () => initialize(headers, payload)))
    for (const id of batchIds) ids.add(id)
  }
  const after = await settle()
  if (ids.size !== sessions) throw new Error(`expected ${sessions} distinct sessions, got ${ids.size}`)
  // The first session still answers: none was evicted or expired while the others opened.
  const first = await fastify.inject({
    method: 'POST',
    url: '/mcp',
    headers: { ...headers, 'mcp-session-id': ids.values().next().value, 'mcp-protocol-version': PROTOCOL_VERSION },
    payload: JSON.stringify(toolsListMessage())
  })
  if (first.statusCode !== 200) throw new Error(`the first session no longer answers: ${first.statusCode} ${first.body.slice(0, 200)}`)
  return { before, after, sessions: ids.size }
}

childProtocol(start, {}, async () => {
  await fastify?.close()
})
