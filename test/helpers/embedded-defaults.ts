import type { Test } from 'tap'
import { buildApp, type TestContext } from './build-app.js'
import { freePort } from './mcp-app.js'
import { captureStdout } from './auth-requests.js'

export interface EmbeddedDefaults { ctx: TestContext, resource: string, origin: string }

/**
 * The app as a first `npm start` runs it (buildApp's issuer variables blanked,
 * so the development issuer is on), listening on a real loopback port.
 */
export async function serveEmbeddedDefaults (t: Test): Promise<EmbeddedDefaults> {
  const port = await freePort()
  const origin = `http://127.0.0.1:${port}`
  const resource = `${origin}/mcp`
  const ctx = await buildApp(t, {
    PORT: String(port),
    MCP_RESOURCE: resource,
    SCALEKIT_ENVIRONMENT_URL: '',
    SCALEKIT_AUTHORIZATION_SERVERS: '',
    SCALEKIT_AUDIENCE_NAME: '',
    SCALEKIT_RESOURCE_METADATA_URL: ''
  }, { skipOverride: true })
  // The development banner goes to stdout, which carries the TAP stream.
  const stdout = captureStdout(t)
  await ctx.app.listen({ port, host: '127.0.0.1' })
  stdout.restore()
  return { ctx, resource, origin }
}
