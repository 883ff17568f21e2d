import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import type { AddressInfo } from 'node:net'
import auth from '../../plugins/auth.js'
import mcp from '../../plugins/mcp.js'
import gracefulClose from '../../plugins/graceful-close.js'
import { LocalIssuer } from '../helpers/issuer.js'
import { startBearerProxy } from './bearer-proxy.js'
import conformanceFixture from './fixture.js'

const RESOURCE = 'http://localhost/mcp'

export interface ConformanceServerOptions {
  logLevel?: string
  /**
   * Two replicas sharing this Redis (a URL or a unix socket path, as ioredis
   * takes them: sessions, stream events, requests to the client,
   * subscriptions), the proxy sending the requests to each in turn.
   * Without it, one replica in memory.
   */
  redisUrl?: string
}

export interface ConformanceServer {
  replicas: FastifyInstance[]
  /** The MCP endpoints themselves (they need a bearer token). */
  mcpUrls: string[]
  /** The endpoint behind the proxy that adds the token: what the suite is pointed at. */
  url: string
  close: () => Promise<void>
}

/**
 * The server the conformance suite runs against: the reusable plugins as
 * another Fastify app would register them (graceful-close, auth verifying
 * tokens from a local issuer on 127.0.0.1, mcp) plus the conformance fixture
 * plugin, listening on a free port of 127.0.0.1, behind a bearer proxy.
 */
export async function startConformanceServer (opts: ConformanceServerOptions = {}): Promise<ConformanceServer> {
  const issuer = await LocalIssuer.start()
  // The suite never looks at the token (the proxy adds it); the audience is a name of this run's own.
  issuer.audience = [RESOURCE]
  const replicas: FastifyInstance[] = []
  const connections: Redis[] = []
  for (let i = 0; i < (opts.redisUrl === undefined ? 1 : 2); i++) {
    const app = Fastify({ logger: { level: opts.logLevel ?? 'warn' }, return503OnClosing: true })
    replicas.push(app)
    await app.register(gracefulClose)
    await app.register(auth, {
      issuers: [issuer.url],
      audiences: [RESOURCE],
      jwks: { keys: issuer.keys.map(k => k.publicJwk) },
      resourceMetadataUrl: 'http://localhost/.well-known/oauth-protected-resource/mcp'
    })
    let redis
    if (opts.redisUrl !== undefined) {
      // What a reusing app hands the mcp plugin: a connection, a second one for SUBSCRIBE, a key prefix.
      const client = new Redis(opts.redisUrl)
      const subscriber = new Redis(opts.redisUrl)
      connections.push(client, subscriber)
      redis = { client, subscriber, prefix: 'conformance:' }
    }
    await app.register(mcp, { serverInfo: { name: 'finance-news-mcp-conformance', version: '0.0.0' }, ...(redis !== undefined && { redis }) })
    await app.register(conformanceFixture)
    await app.listen({ host: '127.0.0.1', port: 0 })
  }
  const mcpUrls = replicas.map(app => `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/mcp`)
  // An hour: longer than any run, so that no scenario meets an expired token.
  const proxy = await startBearerProxy(mcpUrls, await issuer.token({ expiresIn: 3600 }))
  return {
    replicas,
    mcpUrls,
    url: `${proxy.url}/mcp`,
    close: async () => {
      await proxy.close()
      await Promise.all(replicas.map(async app => await app.close()))
      for (const connection of connections) connection.disconnect()
      await issuer.close()
    }
  }
}
