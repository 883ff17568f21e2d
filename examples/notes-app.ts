// A Fastify app of your own with an MCP endpoint protected as an OAuth 2.1
// resource server: one tool with its own schema and scope, one ordinary route.
import Fastify from 'fastify'
import auth from 'finance-news-mcp/auth'
import protectedResourceMetadata from 'finance-news-mcp/protected-resource-metadata'
import mcp from 'finance-news-mcp/mcp'
import { z } from 'zod'

const port = Number(process.env.PORT ?? 3000)
// The URL clients connect to: tokens must be issued for it (RFC 8707).
const resource = process.env.RESOURCE_URL ?? `http://127.0.0.1:${port}/mcp`
const issuer = process.env.ISSUER_URL ?? 'https://auth.example.com'

const app = Fastify({ logger: true })

await app.register(auth, {
  issuers: [issuer],
  audiences: [resource],
  jwksUri: process.env.JWKS_URI ?? `${issuer}/.well-known/jwks.json`,
  resourceMetadataUrl: `${new URL(resource).origin}/.well-known/oauth-protected-resource/mcp`,
  requiredScopes: ['notes:read'] // every protected route and tool needs it
})
await app.register(protectedResourceMetadata, { resource, authorizationServers: [issuer] })
await app.register(mcp, { serverInfo: { name: 'notes', version: '1.0.0' } })

const notes: Array<{ author: string, text: string }> = []

app.mcpTool({
  name: 'add_note',
  description: 'Saves a short note; returns how many notes there are',
  inputSchema: z.object({ text: z.string().min(1).max(500) }),
  outputSchema: z.object({ count: z.number().int() }),
  scopes: ['notes:write'], // callers without it get a 403 scope challenge and can step up
  annotations: { readOnlyHint: false }
}, async ({ text }, { auth }) => {
  notes.push({ author: auth?.subject ?? 'anonymous', text })
  return { content: [{ type: 'text', text: `Saved: ${notes.length} notes` }], structuredContent: { count: notes.length } }
})

// Any route can be protected by the same plugin, with scopes of its own.
app.get('/notes', { config: { auth: { scopes: ['notes:read'] } } }, async request => ({
  caller: request.auth?.subject,
  notes
}))

await app.listen({ port, host: process.env.HOST ?? '127.0.0.1' })
