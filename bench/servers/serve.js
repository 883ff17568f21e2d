// One server under test, alone in its process, listening on 127.0.0.1.
import { buildTarget } from './targets.js'
import { childProtocol } from '../lib/child-protocol.js'

let fastify

childProtocol(async (options) => {
  fastify = await buildTarget(options)
  await fastify.listen({ host: '127.0.0.1', port: 0 })
  return { url: `http://127.0.0.1:${fastify.server.address().port}/mcp` }
}, {
  memory: () => process.memoryUsage(),
  cpu: () => process.cpuUsage()
}, async () => {
  await fastify?.close()
})
