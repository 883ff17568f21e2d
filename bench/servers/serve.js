// One server under test, alone in its process, listening on 127.0.0.1.
import { PerformanceObserver, constants } from 'node:perf_hooks'
import { buildTarget } from './targets.js'
import { childProtocol } from '../lib/child-protocol.js'
import { memoryUsage, settledMemoryUsage } from '../lib/memory-usage.js'

let fastify

/**
 * Garbage collections since the last `gcReset`: scavenges (minor) and
 * mark-compacts (major), with the longest pause of each, from perf_hooks'
 * gc entries (what --trace-gc prints, without parsing it).
 */
let gc
function gcReset () {
  gc = { scavenges: 0, maxScavengeMs: 0, scavengeMs: 0, markCompacts: 0, maxMarkCompactMs: 0 }
  return gc
}
gcReset()
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = entry.detail?.kind
    if (kind === constants.NODE_PERFORMANCE_GC_MINOR) {
      gc.scavenges++
      gc.scavengeMs += entry.duration
      gc.maxScavengeMs = Math.max(gc.maxScavengeMs, entry.duration)
    } else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) {
      gc.markCompacts++
      gc.maxMarkCompactMs = Math.max(gc.maxMarkCompactMs, entry.duration)
    }
  }
}).observe({ entryTypes: ['gc'] })

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
  cpu: () => process.cpuUsage(),
  gcReset: () => gcReset(),
  // Entries arrive asynchronously: let pending ones land before answering.
  gc: () => new Promise(resolve => setImmediate(() => resolve(gc)))
}, async () => {
  await fastify?.close()
})
