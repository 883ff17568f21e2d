import type { FastifyInstance } from 'fastify'

/** Liveness and readiness for orchestrators: public, cheap, no upstream calls. */
export default async function healthRoutes (fastify: FastifyInstance): Promise<void> {
  fastify.get('/health', async () => ({ status: 'ok' }))

  // Ready when the signing keys are at hand: without them every MCP request would get 503.
  fastify.get('/ready', async (_request, reply) => {
    const jwks = fastify.jwksCache
    const keys = jwks === null || jwks.ready
    const checks: Record<string, string> = { config: 'ok', signingKeys: keys ? 'ok' : 'unavailable' }
    let ready = keys
    // With shared state, a replica that cannot reach Redis cannot serve sessions: not ready, and why.
    if (fastify.hasDecorator('redis')) {
      const redis = fastify.redis
      checks.redis = redis.available ? 'ok' : `unavailable${redis.lastError === undefined ? '' : `: ${redis.lastError}`}`
      ready &&= redis.available
    }
    const body = { status: ready ? 'ready' : 'not_ready', checks }
    if (!ready) reply.code(503).header('retry-after', '5')
    return body
  })
}
