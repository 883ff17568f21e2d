import type { FastifyInstance } from 'fastify'

/** Liveness and readiness for orchestrators: public, cheap, no upstream calls. */
export default async function healthRoutes (fastify: FastifyInstance): Promise<void> {
  fastify.get('/health', async () => ({ status: 'ok' }))

  // Ready when the signing keys are at hand: without them every MCP request would get 503.
  fastify.get('/ready', async (_request, reply) => {
    const jwks = fastify.jwksCache
    const keys = jwks === null || jwks.ready
    const body = {
      status: keys ? 'ready' : 'not_ready',
      checks: {
        config: 'ok',
        signingKeys: keys ? 'ok' : 'unavailable'
      }
    }
    if (!keys) reply.code(503).header('retry-after', '5')
    return body
  })
}
