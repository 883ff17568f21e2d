import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'

export interface GracefulCloseOptions {
  /**
   * How often idle keep-alive connections are closed while shutting down.
   * @default 100
   */
  sweepMs?: number
}

/**
 * Lets `close()` finish as soon as in-flight work is done. Node's
 * `server.close()` closes the connections idle at that moment only; a
 * connection whose request finishes later (an in-flight tool call, an SSE
 * stream ended at preClose) would stay open for the whole keep-alive timeout.
 * While closing, responses say `Connection: close` and idle connections are
 * swept until the server is closed.
 */
async function gracefulClose (fastify: FastifyInstance, opts: GracefulCloseOptions): Promise<void> {
  let closing = false
  let sweeper: NodeJS.Timeout | undefined
  fastify.addHook('preClose', async () => {
    closing = true
    sweeper = setInterval(() => fastify.server.closeIdleConnections(), opts.sweepMs ?? 100)
    sweeper.unref()
  })
  // A callback hook: no promise per request on the hot path.
  fastify.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close')
    done(null, payload)
  })
  fastify.addHook('onClose', async () => { clearInterval(sweeper) })
}

export default fp(gracefulClose, { name: 'graceful-close', fastify: '5.x' })
