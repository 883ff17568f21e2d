import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { z } from 'zod'
import authPlugin from '../../plugins/auth.js'
import mcpPlugin, { type McpPluginOptions } from '../../plugins/mcp.js'
import metadataPlugin from '../../plugins/protected-resource-metadata.js'
import { LocalIssuer } from '../helpers/issuer.js'
import { parseChallenge } from '../helpers/auth-requests.js'
import { RESOURCE } from '../helpers/build-app.js'
import { initSession, mcpHeaders, postMcp, toolCall } from '../helpers/mcp-app.js'

/** Per-tool scopes: the endpoint needs news:read; `publish` needs news:write as well. */

const METADATA_URL = 'http://localhost:10000/.well-known/oauth-protected-resource/mcp'
const issuer = await LocalIssuer.start()
issuer.audience = [RESOURCE]
t.teardown(() => issuer.close())

async function appWith (t: Test, options: McpPluginOptions = {}): Promise<FastifyInstance> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(authPlugin, {
    issuers: [issuer.url],
    audiences: [RESOURCE],
    jwks: { keys: issuer.keys.map(k => k.publicJwk) },
    resourceMetadataUrl: METADATA_URL,
    requiredScopes: ['news:read']
  })
  await app.register(metadataPlugin, { resource: RESOURCE, authorizationServers: [issuer.url] })
  await app.register(mcpPlugin, options)
  app.mcpTool({ name: 'read', description: 'Needs only the endpoint scope', inputSchema: z.object({}) }, () => ({ content: [{ type: 'text', text: 'read' }] }))
  app.mcpTool({
    name: 'publish',
    description: 'Needs news:write too',
    inputSchema: { type: 'object', properties: { text: { type: 'string' } }, required: ['text'] },
    scopes: ['news:write']
  }, (args) => ({ content: [{ type: 'text', text: `published ${String(args.text)}` }] }))
  await app.ready()
  return app
}

const readOnly = await issuer.token({ claims: { scopes: ['news:read'] } })
const writer = await issuer.token({ claims: { scopes: ['news:read', 'news:write'] } })

t.test('a call the token lacks scopes for is a 403 scope challenge naming endpoint and tool scopes', async t => {
  const app = await appWith(t)
  const session = await initSession(app, readOnly)
  const res = await postMcp(app, toolCall('publish', { text: 'hi' }), mcpHeaders(readOnly, session))
  t.equal(res.statusCode, 403)
  t.same(parseChallenge(res.headers['www-authenticate']).params, {
    error: 'insufficient_scope',
    error_description: "the access token lacks the required scope 'news:read news:write'",
    resource_metadata: METADATA_URL,
    scope: 'news:read news:write'
  }, 'MCP 2025-11-25 "Scope Challenge Handling": existing and new scopes together')
  const ok = await postMcp(app, toolCall('read', {}), mcpHeaders(readOnly, session))
  t.equal(ok.json().result.content[0].text, 'read', 'a tool without scopes of its own still answers')
  const unknown = await postMcp(app, toolCall('nope', {}), mcpHeaders(readOnly, session))
  t.equal(unknown.json().error.message, 'Unknown tool: nope', 'an unknown tool is still a protocol error, not a 403')
  const nameless = await postMcp(app, { jsonrpc: '2.0', id: 9, method: 'tools/call', params: {} }, mcpHeaders(readOnly, session))
  t.equal(nameless.json().error.code, -32602, 'a call without a tool name is still invalid params')

  // The same subject with more scopes keeps its session (bound to the subject).
  const stepped = await postMcp(app, toolCall('publish', { text: 'hi' }), mcpHeaders(writer, session))
  t.equal(stepped.statusCode, 200)
  t.equal(stepped.json().result.content[0].text, 'published hi')

  const metadata = (await app.inject('/.well-known/oauth-protected-resource/mcp')).json() as { scopes_supported: string[] }
  t.same(metadata.scopes_supported, ['news:read', 'news:write'], 'the metadata lists every scope in use')
})

t.test('tools/list: all tools by default, or only the permitted ones', async t => {
  const list = async (app: FastifyInstance, token: string): Promise<string[]> => {
    const session = await initSession(app, token)
    const res = await postMcp(app, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, mcpHeaders(token, session))
    return (res.json().result.tools as Array<{ name: string }>).map(tool => tool.name)
  }
  const all = await appWith(t)
  t.same(await list(all, readOnly), ['read', 'publish'], 'all: a client can try a tool and step up')
  const permitted = await appWith(t, { listTools: 'permitted' })
  t.same(await list(permitted, readOnly), ['read'])
  t.same(await list(permitted, writer), ['read', 'publish'])
})

t.test('a 2025-03-26 batch holding a call the token lacks scopes for is refused whole', async t => {
  const app = await appWith(t)
  const session = await initSession(app, readOnly, '2025-03-26')
  const headers = mcpHeaders(readOnly, session, '2025-03-26')
  const refused = await postMcp(app, [toolCall('read', {}, 1), { jsonrpc: '2.0', method: 'notifications/x' }, toolCall('publish', { text: 'x' }, 2)], headers)
  t.equal(refused.statusCode, 403)
  t.equal(parseChallenge(refused.headers['www-authenticate']).params.scope, 'news:read news:write')
  const allowed = await postMcp(app, [toolCall('read', {}, 1), { jsonrpc: '2.0', id: 2, method: 'ping' }], headers)
  t.equal(allowed.statusCode, 200)
  t.equal(allowed.json().length, 2)
})

t.test('options and definitions that cannot work are refused at registration', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(mcpPlugin, { auth: false })
  t.throws(() => app.mcpTool({ name: 'x', description: 'd', inputSchema: z.object({}), scopes: ['a'] }, () => ({ content: [] })),
    /^mcp: tool "x" declares scopes, but the endpoint runs without auth \(auth: false\)$/)
  app.mcpTool({ name: 'y', description: 'd', inputSchema: z.object({}), scopes: [] }, () => ({ content: [] }))

  // Without auth there is no caller to filter for: 'permitted' lists everything.
  const open = Fastify()
  t.teardown(() => open.close())
  await open.register(mcpPlugin, { auth: false, listTools: 'permitted' })
  open.mcpTool({ name: 'z', description: 'd', inputSchema: z.object({}) }, () => ({ content: [] }))
  const session = await initSession(open, undefined)
  const listed = await postMcp(open, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, mcpHeaders(undefined, session))
  t.same(listed.json().result?.tools.map((tool: { name: string }) => tool.name), ['z'], listed.body)

  const bad = Fastify()
  t.teardown(() => bad.close())
  bad.register(mcpPlugin, { auth: false, listTools: 'mine' as 'all' })
  await t.rejects(async () => { await bad.ready() }, { message: 'mcp: "listTools" must be "all" or "permitted"' })
})
