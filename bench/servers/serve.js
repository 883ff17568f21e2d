// One server under test, alone in its process, listening on 127.0.0.1.
import { buildTarget } from './targets.js'
import { childProtocol } from '../lib/child-protocol.js'
import { memoryUsage, settledMemoryUsage } from '../lib/memory-usage.js'

let fastify

/** This server's open MCP sessions, in all and per subject (app.mcpSessions). */
function sessions () {
  const store = fastify?.appContext?.mcpSessions
  if (store === undefined) throw new Error('this target has no mcpSessions')
  const bySubject = {}
  for (const { subject: owner } of store.values()) {
    // A session's owner is [principal, client] (issue 8, point 8); count by the principal's name.
    const subject = owner.startsWith('[') ? JSON.parse(owner)[0].replace(/^(user|client):/, '') : owner
    bySubject[subject] = (bySubject[subject] ?? 0) + 1
  }
  return { size: store.size, bySubject }
}

childProtocol(async (options) => {
  fastify = await buildTarget(options)
  await fastify.listen({ host: '127.0.0.1', port: 0 })
  return { url: `http://127.0.0.1:${fastify.server.address().port}/mcp` }
}, {
  memory: memoryUsage,
  settledMemory: settledMemoryUsage,
  sessions,
  cpu: () => process.cpuUsage()
}, async () => {
  await fastify?.close()
})
