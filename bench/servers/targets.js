// The three servers the benchmark compares, each built as a Fastify instance
// (not listening: serve.js listens, memory.js injects).
import Fastify from 'fastify'
import { createRemoteJWKSet, jwtVerify } from 'jose'

/** The same logger settings everywhere, so the comparison is about the MCP and auth work. */
function logger (level) {
  return { level }
}

/**
 * (a) The ceiling: one POST route, Fastify's JSON body parsing and
 * serialization, and a JSON-RPC response of the same size as the real one.
 */
export async function buildBare ({ results, logLevel = 'warn' }) {
  const fastify = Fastify({ logger: logger(logLevel) })
  fastify.post('/mcp', async (request) => {
    const body = request.body
    return { jsonrpc: '2.0', id: body?.id ?? 1, result: results[body?.method] ?? {} }
  })
  return fastify
}

/**
 * (b) The reference integration: the SDK's Node StreamableHTTPServerTransport
 * and McpServer behind Fastify, wired as the SDK's examples wire them
 * (simpleStreamableHttp / simpleStatelessStreamableHttp), with a bearer check
 * that runs jose's jwtVerify against createRemoteJWKSet on every request
 * (jose caches the key set; there is no verified-token cache).
 *
 * `tool` is this server's tools/list entry (title, description, annotations),
 * and the tool answers with `toolResult`, precomputed: an in-memory cache hit.
 * Stateful: a transport per session in a Map by session id. The SDK example's
 * map grows without bound; here the oldest session is closed past
 * `maxSessions` so a fresh-client run cannot exhaust memory.
 */
export async function buildReference ({ stateless, jwksUri, issuer, audience, requiredScope, tool, toolResult, maxSessions = 1000, logLevel = 'warn' }) {
  const [{ McpServer }, { StreamableHTTPServerTransport }, { isInitializeRequest }, { NewsSentimentInput, NewsSentimentOutput }] = await Promise.all([
    import('@modelcontextprotocol/sdk/server/mcp.js'),
    import('@modelcontextprotocol/sdk/server/streamableHttp.js'),
    import('@modelcontextprotocol/sdk/types.js'),
    import('../../dist/tools/news-sentiment.js')
  ])
  const { randomUUID } = await import('node:crypto')

  function getServer () {
    const server = new McpServer({ name: 'reference-news-mcp', version: '1.0.0' })
    server.registerTool(tool.name, {
      title: tool.title,
      description: tool.description,
      inputSchema: NewsSentimentInput,
      outputSchema: NewsSentimentOutput,
      annotations: tool.annotations
    }, async () => toolResult)
    return server
  }

  const jwks = createRemoteJWKSet(new URL(jwksUri))
  const fastify = Fastify({ logger: logger(logLevel) })

  fastify.addHook('onRequest', async (request, reply) => {
    const header = request.headers.authorization
    if (typeof header !== 'string' || !header.startsWith('Bearer ')) {
      return reply.code(401).header('www-authenticate', 'Bearer error="invalid_token"').send({ error: 'invalid_token' })
    }
    const token = header.slice(7)
    let payload
    try {
      ({ payload } = await jwtVerify(token, jwks, { issuer, audience }))
    } catch (err) {
      return reply.code(401).header('www-authenticate', 'Bearer error="invalid_token"').send({ error: 'invalid_token', error_description: err.message })
    }
    const scopes = typeof payload.scope === 'string' ? payload.scope.split(' ') : []
    if (!scopes.includes(requiredScope)) {
      return reply.code(403).header('www-authenticate', 'Bearer error="insufficient_scope"').send({ error: 'insufficient_scope' })
    }
    // The SDK's transport reads `req.auth` (what its bearer middleware sets).
    request.raw.auth = { token, clientId: payload.client_id, scopes, expiresAt: payload.exp, extra: { sub: payload.sub } }
  })

  function jsonRpcError (reply, status, message) {
    return reply.code(status).send({ jsonrpc: '2.0', error: { code: -32000, message }, id: null })
  }

  if (stateless) {
    fastify.post('/mcp', async (request, reply) => {
      const server = getServer()
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined })
      reply.raw.on('close', () => {
        transport.close()
        server.close()
      })
      await server.connect(transport)
      reply.hijack()
      await transport.handleRequest(request.raw, reply.raw, request.body)
    })
    return fastify
  }

  const transports = new Map()
  fastify.decorate('referenceSessions', transports)

  fastify.post('/mcp', async (request, reply) => {
    const sessionId = request.headers['mcp-session-id']
    let transport
    if (typeof sessionId === 'string' && transports.has(sessionId)) {
      transport = transports.get(sessionId)
    } else if (sessionId === undefined && isInitializeRequest(request.body)) {
      transport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          transports.set(id, transport)
          if (transports.size > maxSessions) {
            const oldest = transports.keys().next().value
            const evicted = transports.get(oldest)
            transports.delete(oldest)
            evicted.close()
          }
        }
      })
      transport.onclose = () => {
        if (transport.sessionId !== undefined && transports.get(transport.sessionId) === transport) transports.delete(transport.sessionId)
      }
      await getServer().connect(transport)
    } else {
      return jsonRpcError(reply, 400, 'Bad Request: No valid session ID provided')
    }
    reply.hijack()
    await transport.handleRequest(request.raw, reply.raw, request.body)
  })

  async function sessionRequest (request, reply) {
    const sessionId = request.headers['mcp-session-id']
    const transport = typeof sessionId === 'string' ? transports.get(sessionId) : undefined
    if (transport === undefined) return jsonRpcError(reply, 400, 'Invalid or missing session ID')
    reply.hijack()
    await transport.handleRequest(request.raw, reply.raw)
  }
  fastify.get('/mcp', sessionRequest)
  fastify.delete('/mcp', sessionRequest)

  fastify.addHook('onClose', async () => {
    await Promise.all([...transports.values()].map(t => t.close()))
  })
  return fastify
}

/**
 * (c) This server, registered the way fastify-cli does it: Fastify(options),
 * then register(app, { env }).
 */
export async function buildThisServer ({ env, logLevel = 'warn' }) {
  const { default: app, options } = await import('../../dist/app.js')
  const fastify = Fastify({ ...options, logger: { ...options.logger, level: logLevel } })
  // Registered this way the app is encapsulated, and so are its decorators
  // (mcpSessions): keep its context, the first one registered, for the soak to ask.
  fastify.decorate('appContext', null)
  fastify.addHook('onRegister', (instance) => { fastify.appContext ??= instance })
  await fastify.register(app, { env })
  return fastify
}

/**
 * (d) The reusable plugins alone: auth (keys from the fixtures' JWKS) and the
 * MCP transport with one trivial `echo` tool, so that the transport's own
 * cost shows without the news tool's (issue 15).
 */
export async function buildPlugins ({ jwksUri, issuer, audience, requiredScope, logLevel = 'warn' }) {
  const [{ default: auth }, { default: mcp }, { z }] = await Promise.all([
    import('../../dist/plugins/auth.js'),
    import('../../dist/plugins/mcp.js'),
    import('zod')
  ])
  const fastify = Fastify({ logger: logger(logLevel) })
  await fastify.register(auth, {
    issuers: [issuer],
    audiences: [audience],
    jwksUri,
    requiredScopes: [requiredScope],
    resourceMetadataUrl: `${new URL(audience).origin}/.well-known/oauth-protected-resource/mcp`
  })
  await fastify.register(mcp, { path: '/mcp', maxSessionsPerSubject: 1000 })
  fastify.mcpTool({
    name: 'echo',
    description: 'Answers with its text',
    inputSchema: z.object({ text: z.string() })
  }, async ({ text }) => ({ content: [{ type: 'text', text }] }))
  return fastify
}

export async function buildTarget (options) {
  switch (options.kind) {
    case 'bare': return await buildBare(options)
    case 'reference': return await buildReference(options)
    case 'app': return await buildThisServer(options)
    case 'plugins': return await buildPlugins(options)
    default: throw new Error(`unknown target kind ${options.kind}`)
  }
}
