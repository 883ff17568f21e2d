import Fastify, { type FastifyInstance } from 'fastify'
import type { AddressInfo } from 'node:net'
import auth from '../../plugins/auth.js'
import mcp from '../../plugins/mcp.js'
import gracefulClose from '../../plugins/graceful-close.js'
import { LocalIssuer } from '../helpers/issuer.js'
import { startBearerProxy } from './bearer-proxy.js'
import conformanceFixture from './fixture.js'

const RESOURCE = 'http://localhost/mcp'

export interface ConformanceServer {
  app: FastifyInstance
  /** The MCP endpoint itself (needs a bearer token). */
  mcpUrl: string
  /** The same endpoint behind the proxy that adds the token: what the suite is pointed at. */
  url: string
  close: () => Promise<void>
}

/**
 * The server the conformance suite runs against: the reusable plugins as
 * another Fastify app would register them (graceful-close, auth verifying
 * tokens from a local issuer on 127.0.0.1, mcp) plus the conformance fixture
 * plugin, listening on a free port of 127.0.0.1, behind a bearer proxy.
 */
export async function startConformanceServer (opts: { logLevel?: string } = {}): Promise<ConformanceServer> {
  const issuer = await LocalIssuer.start()
  const app = Fastify({ logger: { level: opts.logLevel ?? 'warn' }, return503OnClosing: true })
  try {
    await app.register(gracefulClose)
    // The suite never looks at the token (the proxy adds it); the audience is a name of this run's own.
    issuer.audience = [RESOURCE]
    await app.register(auth, {
      issuers: [issuer.url],
      audiences: [RESOURCE],
      jwks: { keys: issuer.keys.map(k => k.publicJwk) },
      resourceMetadataUrl: 'http://localhost/.well-known/oauth-protected-resource/mcp'
    })
    await app.register(mcp, { serverInfo: { name: 'finance-news-mcp-conformance', version: '0.0.0' } })
    await app.register(conformanceFixture)
    await app.listen({ host: '127.0.0.1', port: 0 })
  } catch (err) {
    await app.close()
    await issuer.close()
    throw err
  }
  const mcpUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/mcp`
  // An hour: longer than any run, so that no scenario meets an expired token.
  const proxy = await startBearerProxy(mcpUrl, await issuer.token({ expiresIn: 3600 }))
  return {
    app,
    mcpUrl,
    url: `${proxy.url}/mcp`,
    close: async () => {
      await proxy.close()
      await app.close()
      await issuer.close()
    }
  }
}
