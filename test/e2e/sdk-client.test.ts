import t, { type Test } from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js'
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js'
import { buildApp, type TestContext } from '../helpers/build-app.js'
import { LocalIssuer } from '../helpers/issuer.js'
import { freePort } from '../helpers/mcp-app.js'
import { serveEmbeddedDefaults } from '../helpers/embedded-defaults.js'

/**
 * The official MCP TypeScript SDK client against the app listening on
 * 127.0.0.1: what a real agent does, from discovery to tool result.
 */

const issuer = await LocalIssuer.start()
t.teardown(() => issuer.close())

interface Served { ctx: TestContext, url: URL }

/**
 * The app on a real port. The resource identifier must be the URL the client
 * uses (the SDK checks the metadata's `resource` against it, RFC 9728 §3.3),
 * so the port is chosen before the app is built.
 */
async function serve (t: Test): Promise<Served> {
  const port = await freePort()
  const resource = `http://127.0.0.1:${port}/mcp`
  const ctx = await buildApp(t, {
    PORT: String(port),
    MCP_RESOURCE: resource,
    SCALEKIT_AUDIENCE_NAME: resource,
    SCALEKIT_RESOURCE_METADATA_URL: `http://127.0.0.1:${port}/.well-known/oauth-protected-resource/mcp`
  }, { issuer })
  // Tokens for this resource, as the issuer mints them after an RFC 8707 request.
  issuer.audience = [resource]
  await ctx.app.listen({ port, host: '127.0.0.1' })
  return { ctx, url: new URL(resource) }
}

async function connect (t: Test, url: URL, opts: { token?: string, authProvider?: OAuthClientProvider }): Promise<{ client: Client, transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(url, {
    ...(opts.token !== undefined && { requestInit: { headers: { Authorization: `Bearer ${opts.token}` } } }),
    ...(opts.authProvider !== undefined && { authProvider: opts.authProvider })
  })
  const client = new Client({ name: 'tap-sdk-client', version: '1.0.0' })
  t.teardown(() => client.close())
  await client.connect(transport)
  return { client, transport }
}

type ToolResult = Awaited<ReturnType<Client['callTool']>>

function checkNewsResult (t: Test, result: ToolResult): void {
  t.notOk(result.isError, 'not an error result')
  // The SDK has validated structuredContent against the tool's outputSchema (it throws otherwise).
  const structured = result.structuredContent as { articles: unknown[] } | undefined
  t.ok(Array.isArray(structured?.articles) && structured.articles.length > 0, 'structured articles')
  const content = result.content as Array<{ type: string, text?: string }>
  t.ok(content.some(c => c.type === 'text' && (c.text ?? '').includes('AAPL')), 'text content for the model')
}

t.test('SDK client with a bearer token: connect, list, call, terminate', async t => {
  const { ctx, url } = await serve(t)
  const token = await issuer.token()
  const { client, transport } = await connect(t, url, { token })

  t.equal(client.getServerVersion()?.name, 'finance-news-mcp')
  t.equal(transport.protocolVersion, '2025-11-25', 'the SDK and the server agree on the latest version')
  t.type(transport.sessionId, 'string')

  const { tools } = await client.listTools()
  const news = tools.find(tool => tool.name === 'get_news_sentiment')
  t.ok(news?.outputSchema, 'the tool declares an output schema')
  t.equal(news?.annotations?.readOnlyHint, true)

  const result = await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } })
  checkNewsResult(t, result)
  t.ok(ctx.upstream.hits.length >= 1, 'the fake upstream was asked')

  // 2025-11-25 (SEP-1303): invalid arguments come back as a result the model can read.
  const invalid = await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: '???' } })
  t.equal(invalid.isError, true)

  const sessionId = transport.sessionId as string
  await transport.terminateSession()
  t.equal(transport.sessionId, undefined)
  // The server forgot the session: the same id is now unknown.
  const after = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': sessionId },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' })
  })
  t.equal(after.status, 404)
})

t.test('SDK client with ClientCredentialsProvider: discovery from the 401, token, retry', async t => {
  const { ctx, url } = await serve(t)
  const tokenRequestsBefore = issuer.tokenRequests
  const authProvider = new ClientCredentialsProvider({ clientId: 'test-client', clientSecret: 'test-secret', expectedIssuer: issuer.resourceIssuer })
  const { client } = await connect(t, url, { authProvider })

  t.equal(issuer.tokenRequests, tokenRequestsBefore + 1, 'one token request at the issuer')
  const tokens = await authProvider.tokens()
  t.type(tokens?.access_token, 'string')
  const claims = JSON.parse(Buffer.from(String(tokens?.access_token).split('.')[1] ?? '', 'base64url').toString()) as { aud: string[], sub: string }
  t.ok(claims.aud.includes(url.href), 'the resource parameter (RFC 8707) became the audience')
  t.equal(claims.sub, 'test-client')

  const result = await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } })
  checkNewsResult(t, result)
  t.equal(issuer.tokenRequests, tokenRequestsBefore + 1, 'the token is reused')
  t.ok(ctx.logs.some(line => line.includes('"outcome":"denied"') && line.includes('no_credentials')), 'the first attempt was refused for want of a token')
})

t.test('SDK client with wrong client credentials never gets in', async t => {
  const { ctx, url } = await serve(t)
  const tokenRequestsBefore = issuer.tokenRequests
  const authProvider = new ClientCredentialsProvider({ clientId: 'test-client', clientSecret: 'wrong', expectedIssuer: issuer.resourceIssuer })
  const transport = new StreamableHTTPClientTransport(url, { authProvider })
  const client = new Client({ name: 'tap-sdk-client', version: '1.0.0' })
  t.teardown(() => client.close())
  await t.rejects(client.connect(transport))
  t.ok(issuer.tokenRequests > tokenRequestsBefore, 'the issuer refused the client')
  t.equal(await authProvider.tokens(), undefined, 'no token was obtained')
  t.equal(ctx.upstream.hits.length, 0)
})

t.test('SDK client whose token lacks the scope gets the 403 insufficient_scope', async t => {
  const { ctx, url } = await serve(t)
  const token = await issuer.token({ claims: { scopes: ['profile'] } })
  const transport = new StreamableHTTPClientTransport(url, { requestInit: { headers: { Authorization: `Bearer ${token}` } } })
  const client = new Client({ name: 'tap-sdk-client', version: '1.0.0' })
  t.teardown(() => client.close())
  const error = await client.connect(transport).then(() => undefined, (err: unknown) => err)
  t.ok(error instanceof StreamableHTTPError, 'the SDK surfaces a transport error')
  t.equal((error as StreamableHTTPError).code, 403)
  t.match((error as Error).message, /insufficient_scope/)
  t.equal(ctx.upstream.hits.length, 0)
})

t.test('with nothing configured, an SDK client discovers the development issuer and gets a token', async t => {
  const { ctx, resource, origin } = await serveEmbeddedDefaults(t)
  const { clientId, clientSecret } = ctx.app.devIssuer
  const authProvider = new ClientCredentialsProvider({ clientId, clientSecret, expectedIssuer: `${origin}/dev-issuer` })
  const { client } = await connect(t, new URL(resource), { authProvider })
  const tokens = await authProvider.tokens()
  const claims = JSON.parse(Buffer.from(String(tokens?.access_token).split('.')[1] ?? '', 'base64url').toString()) as { iss: string }
  t.equal(claims.iss, `${origin}/dev-issuer`)
  checkNewsResult(t, await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } }))
})
