import t from 'tap'
import Fastify from 'fastify'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js'
import { Type } from '@sinclair/typebox'
import authPlugin from '../../plugins/auth.js'
import mcpPlugin from '../../plugins/mcp.js'
import metadataPlugin from '../../plugins/protected-resource-metadata.js'
import { LocalIssuer } from '../helpers/issuer.js'
import { freePort } from '../helpers/mcp-app.js'
import { InteractiveProvider } from '../helpers/oauth-provider.js'

/**
 * MCP 2025-11-25 authorization "Step-Up Authorization Flow" with the
 * official SDK client: a token good for the endpoint but not for one tool
 * gets a 403 scope challenge; the client re-authorizes for the scopes the
 * challenge names, then the call succeeds, in the same session.
 */

t.test('the SDK client steps up on a 403 insufficient_scope and retries the call', async t => {
  const issuer = await LocalIssuer.start()
  t.teardown(() => issuer.close())
  const port = await freePort()
  const resource = `http://127.0.0.1:${port}/mcp`
  issuer.audience = [resource]

  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(authPlugin, {
    issuers: [issuer.url],
    audiences: [resource],
    jwksUri: issuer.jwksUri,
    resourceMetadataUrl: `http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp`,
    requiredScopes: ['notes:read']
  })
  await app.register(metadataPlugin, { resource, authorizationServers: [issuer.url] })
  await app.register(mcpPlugin, { serverInfo: { name: 'notes', version: '1.0.0' } })
  const notes: string[] = []
  app.mcpTool({
    name: 'add_note',
    description: 'Adds a note',
    inputSchema: Type.Object({ text: Type.String({ minLength: 1 }) }),
    outputSchema: Type.Object({ count: Type.Integer() }),
    scopes: ['notes:write']
  }, ({ text }) => {
    notes.push(text)
    return { content: [{ type: 'text', text: `${notes.length} notes` }], structuredContent: { count: notes.length } }
  })
  await app.listen({ port, host: '127.0.0.1' })

  // The user authorized notes:read earlier, through this same client: the client holds that token.
  // (A session belongs to its user and client: the stepped-up token must come to the same client.)
  const first = await issuer.token({ claims: { aud: [resource], scopes: undefined, scope: 'notes:read', client_id: 'test-client' } })
  const provider = new InteractiveProvider('notes:read', { access_token: first, token_type: 'Bearer' })
  const transport = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider })
  const client = new Client({ name: 'tap-step-up', version: '1.0.0' })
  t.teardown(() => client.close())
  await client.connect(transport)
  const sessionId = transport.sessionId
  t.same((await client.listTools()).tools.map(tool => tool.name), ['add_note'])

  const refused = await client.callTool({ name: 'add_note', arguments: { text: 'one' } }).then(() => undefined, (err: unknown) => err)
  t.ok(refused instanceof UnauthorizedError, 'the SDK sent the user to authorize the missing scope')
  t.equal(provider.authorizations.length, 1)
  t.equal(provider.authorizations[0]?.searchParams.get('scope'), 'notes:read notes:write', 'it asked for the scopes the challenge named')
  t.equal(provider.authorizations[0]?.searchParams.get('resource'), resource, 'for this resource (RFC 8707)')
  t.same(notes, [], 'the tool did not run')

  await transport.finishAuth(provider.code as string)
  const granted = JSON.parse(Buffer.from(String(provider.tokens()?.access_token).split('.')[1], 'base64url').toString()) as { scope: string }
  t.equal(granted.scope, 'notes:read notes:write')

  const result = await client.callTool({ name: 'add_note', arguments: { text: 'one' } })
  t.same(result.structuredContent, { count: 1 }, 'the retried call succeeds (the SDK checked it against the outputSchema)')
  t.equal(transport.sessionId, sessionId, 'in the same session: the user and the client did not change')
  t.same(notes, ['one'])
})
