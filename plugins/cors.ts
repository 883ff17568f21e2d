import fp from 'fastify-plugin'
import cors, { type FastifyCorsOptions } from '@fastify/cors'
import type { FastifyInstance } from 'fastify'
import { LOOPBACK_ORIGIN } from '../lib/http/loopback-origin.js'

export interface CorsOptions {
  /** Allowed origins; empty means loopback origins only, `*` any origin. */
  origins: string[]
  /**
   * Path prefixes readable from any origin (discovery documents).
   * @default ['/.well-known/']
   */
  publicPrefixes?: string[]
}

const common: FastifyCorsOptions = {
  // Bearer tokens travel in a header, not cookies: credentials mode is never
  // needed, and `*` is never combined with it.
  credentials: false,
  methods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
  allowedHeaders: ['Authorization', 'Content-Type', 'Accept', 'Mcp-Session-Id', 'MCP-Protocol-Version', 'Last-Event-ID'],
  exposedHeaders: ['Mcp-Session-Id', 'WWW-Authenticate', 'MCP-Protocol-Version', 'Retry-After'],
  maxAge: 600
}

/**
 * @fastify/cors with this server's settings: browser clients (MCP Inspector
 * in direct mode) must read the session id and the auth challenge, and send
 * the MCP headers. Discovery documents (RFC 9728 metadata) are public: any
 * origin may read them, or a browser client could never find out where to get
 * a token.
 */
async function corsPlugin (fastify: FastifyInstance, opts: CorsOptions): Promise<void> {
  const publicPrefixes = opts.publicPrefixes ?? ['/.well-known/']
  const allowHeaders = (common.allowedHeaders as string[]).join(', ')

  // Discovery documents first, by a hook of our own: @fastify/cors with a
  // per-request `delegator` re-normalizes its options on every request, the
  // static form below does not.
  fastify.addHook('onRequest', function publicCors (request, reply, done) {
    if (request.headers.origin === undefined || !publicPrefixes.some(prefix => request.url.startsWith(prefix))) return done()
    reply.header('access-control-allow-origin', '*')
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] !== undefined) {
      // The preflight, answered here (Fetch standard "CORS-preflight fetch").
      reply.code(204)
        .header('access-control-allow-methods', 'GET, OPTIONS')
        .header('access-control-allow-headers', allowHeaders)
        .header('access-control-max-age', String(common.maxAge))
        .send()
      return
    }
    done()
  })

  await fastify.register(cors, {
    ...common,
    origin: opts.origins.includes('*') ? '*' : opts.origins.length > 0 ? opts.origins : LOOPBACK_ORIGIN
  })
}

export default fp(corsPlugin, { name: 'cors', fastify: '5.x' })
