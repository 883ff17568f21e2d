import fp from 'fastify-plugin'
import cors, { type FastifyCorsOptions } from '@fastify/cors'
import type { FastifyInstance } from 'fastify'

export interface CorsOptions {
  /** Allowed origins; empty means loopback origins only, `*` any origin. */
  origins: string[]
  /** Path prefixes readable from any origin (discovery documents). Default: `/.well-known/`. */
  publicPrefixes?: string[]
}

const LOOPBACK_ORIGIN = /^https?:\/\/(localhost|127\.0\.0\.1|\[::1\])(:\d+)?$/

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
  const endpoint: FastifyCorsOptions = {
    ...common,
    origin: opts.origins.includes('*') ? '*' : opts.origins.length > 0 ? opts.origins : LOOPBACK_ORIGIN
  }
  const discovery: FastifyCorsOptions = { ...common, origin: '*' }
  await fastify.register(cors, {
    delegator (request, callback) {
      const url = request.url
      callback(null, publicPrefixes.some(prefix => url.startsWith(prefix)) ? discovery : endpoint)
    }
  })
}

export default fp(corsPlugin, { name: 'cors', fastify: '5.x' })
