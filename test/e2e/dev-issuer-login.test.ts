import t, { type Test } from 'tap'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { OAuthClientProvider } from '@modelcontextprotocol/sdk/client/auth.js'
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from '@modelcontextprotocol/sdk/shared/auth.js'
import { serveEmbeddedDefaults } from '../helpers/embedded-defaults.js'

/**
 * The login a new user sees with nothing configured: the official SDK client
 * runs its interactive OAuth flow (discovery from the 401, dynamic client
 * registration, authorization code with PKCE, resource indicator) against the
 * development issuer over real HTTP; the test plays the browser.
 */

/** What an MCP client application keeps: its registration, PKCE verifier and tokens. */
class InteractiveClient implements OAuthClientProvider {
  info?: OAuthClientInformationMixed
  saved?: OAuthTokens
  verifier = ''
  authorizationUrl?: URL
  readonly redirectUrl = 'http://127.0.0.1:1/oauth/callback'
  get clientMetadata (): OAuthClientMetadata {
    return {
      client_name: 'tap interactive client',
      redirect_uris: [this.redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none'
    }
  }

  clientInformation (): OAuthClientInformationMixed | undefined { return this.info }
  saveClientInformation (info: OAuthClientInformationMixed): void { this.info = info }
  tokens (): OAuthTokens | undefined { return this.saved }
  saveTokens (tokens: OAuthTokens): void { this.saved = tokens }
  redirectToAuthorization (url: URL): void { this.authorizationUrl = url }
  saveCodeVerifier (verifier: string): void { this.verifier = verifier }
  codeVerifier (): string { return this.verifier }
}

/** A browser's cookie jar, just enough for one origin. */
class Browser {
  cookies = new Map<string, string>()
  async go (url: string, init: RequestInit = {}): Promise<Response> {
    const res = await fetch(url, { ...init, redirect: 'manual', headers: { ...(init.headers as Record<string, string>), cookie: [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ') } })
    for (const line of res.headers.getSetCookie()) {
      const [pair = ''] = line.split(';')
      const eq = pair.indexOf('=')
      this.cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1))
    }
    return res
  }
}

function claimsOf (token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as Record<string, unknown>
}

async function connect (t: Test, resource: string, authProvider: OAuthClientProvider): Promise<{ client: Client, transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(resource), { authProvider })
  const client = new Client({ name: 'tap-interactive', version: '1.0.0' })
  t.teardown(() => client.close())
  await client.connect(transport)
  return { client, transport }
}

/** Follows the SDK's authorization URL the way a user's browser would, and returns the code. */
async function signIn (t: Test, authorizationUrl: URL, origin: string, browser = new Browser()): Promise<string> {
  const toSignIn = await browser.go(authorizationUrl.href)
  t.equal(toSignIn.status, 303, 'the authorization endpoint sends the browser to the sign-in page')
  const signInUrl = new URL(toSignIn.headers.get('location') ?? '', authorizationUrl)
  t.equal(signInUrl.origin, origin)
  t.match(signInUrl.pathname, /^\/dev-issuer\/interaction\/[\w-]+$/)

  const page = await browser.go(signInUrl.href)
  t.equal(page.status, 200)
  t.match(page.headers.get('content-type'), /^text\/html/)
  const html = await page.text()
  t.match(html, 'DEVELOPMENT ONLY', 'the banner says what this is')
  t.match(html, 'tap interactive client', 'the page names the registered client')
  t.match(html, '<code>news:read</code>')
  const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1]
  t.type(action, 'string', 'one form, one button')

  const signedIn = await browser.go(new URL(action as string, signInUrl).href, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' })
  t.equal(signedIn.status, 303)
  // Back to the authorization endpoint, which (consent given for news:read) redirects to the client.
  const back = await browser.go(new URL(signedIn.headers.get('location') ?? '', signInUrl).href)
  t.equal(back.status, 303)
  const callback = new URL(back.headers.get('location') ?? '')
  t.equal(`${callback.origin}${callback.pathname}`, 'http://127.0.0.1:1/oauth/callback', 'to the registered redirect URI')
  t.equal(callback.searchParams.get('iss'), `${origin}/dev-issuer`, 'RFC 9207 iss in the response')
  const code = callback.searchParams.get('code')
  t.type(code, 'string')
  return code as string
}

t.test('the SDK client signs in interactively: discovery, registration, PKCE, one click, tools', async t => {
  const { ctx, resource, origin } = await serveEmbeddedDefaults(t)
  const provider = new InteractiveClient()

  // First attempt: 401 → discovery → registration → redirect to the issuer.
  const transport = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider })
  const first = new Client({ name: 'tap-interactive', version: '1.0.0' })
  t.teardown(() => first.close())
  await t.rejects(first.connect(transport), { message: 'Unauthorized' }, 'the SDK stops to let the user sign in')
  t.type(provider.info?.client_id, 'string', 'registered by RFC 7591 dynamic client registration')
  const authorizationUrl = provider.authorizationUrl as URL
  t.equal(`${authorizationUrl.origin}${authorizationUrl.pathname}`, `${origin}/dev-issuer/auth`)
  t.equal(authorizationUrl.searchParams.get('code_challenge_method'), 'S256')
  t.equal(authorizationUrl.searchParams.get('resource'), resource, 'RFC 8707 resource indicator')
  t.equal(authorizationUrl.searchParams.get('scope'), 'news:read', 'the scope from the 401 challenge')

  const browser = new Browser()
  const code = await signIn(t, authorizationUrl, origin, browser)
  await transport.finishAuth(code)
  const tokens = provider.saved as OAuthTokens
  t.type(tokens.access_token, 'string')
  t.type(tokens.refresh_token, 'string', 'a refresh token too')
  t.match(claimsOf(tokens.access_token), {
    iss: `${origin}/dev-issuer`,
    aud: [resource, 'res_dev'],
    scopes: ['news:read'],
    sub: 'dev-user',
    client_id: provider.info?.client_id,
    jti: String
  }, "an access token in ScaleKit's shape")

  const { client } = await connect(t, resource, provider)
  const result = await client.callTool({ name: 'get_news_sentiment', arguments: { ticker: 'AAPL' } })
  t.notOk(result.isError)
  t.ok(ctx.upstream.hits.length >= 1, 'the tool ran')
  t.ok(ctx.logs.some(line => line.includes('"outcome":"allowed","subject":"dev-user"') && line.includes(`"client":"${String(provider.info?.client_id)}"`)), 'the server saw the signed-in user and the registered client')

  // PKCE: the code is single-use and bound to the verifier.
  const replay = await fetch(`${origin}/dev-issuer/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: provider.verifier, client_id: String(provider.info?.client_id), redirect_uri: provider.redirectUrl }).toString()
  })
  t.equal(replay.status, 400)
  t.match(await replay.json(), { error: 'invalid_grant' }, 'a used code is refused')
  t.notOk(ctx.logs.some(line => line.includes(tokens.access_token) || line.includes(String(tokens.refresh_token))), 'no token in the logs')

  // Signed in already (the session cookie) and consent on record: the next
  // authorization goes straight back to the client, no second click.
  const again = await browser.go(authorizationUrl.href)
  t.equal(again.status, 303)
  const location = new URL(again.headers.get('location') ?? '')
  t.equal(`${location.origin}${location.pathname}`, provider.redirectUrl)
  t.type(location.searchParams.get('code'), 'string')
})

t.test('an expired access token is refreshed by the SDK with its refresh token', async t => {
  const { resource, origin } = await serveEmbeddedDefaults(t)
  const provider = new InteractiveClient()
  const transport = new StreamableHTTPClientTransport(new URL(resource), { authProvider: provider })
  const first = new Client({ name: 'tap-interactive', version: '1.0.0' })
  t.teardown(() => first.close())
  await t.rejects(first.connect(transport), { message: 'Unauthorized' })
  await transport.finishAuth(await signIn(t, provider.authorizationUrl as URL, origin))
  const original = provider.saved as OAuthTokens

  // The access token is no longer accepted (here: garbled); the refresh token still is.
  provider.saved = { ...original, access_token: `${original.access_token.slice(0, -4)}AAAA` }
  const { client } = await connect(t, resource, provider)
  const refreshed = provider.saved
  t.not(refreshed.access_token, original.access_token, 'a new access token')
  t.match(claimsOf(refreshed.access_token), { aud: [resource, 'res_dev'], scopes: ['news:read'], sub: 'dev-user' })
  t.ok((await client.listTools()).tools.length > 0, 'and it is accepted on /mcp')
})

t.test('no token for another resource, and a token for another resource is refused on /mcp', async t => {
  const { ctx, resource, origin } = await serveEmbeddedDefaults(t)
  const { clientId, clientSecret } = ctx.app.devIssuer
  const basic = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`
  const ask = async (target: string): Promise<Response> => await fetch(`${origin}/dev-issuer/token`, {
    method: 'POST',
    headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', scope: 'news:read', resource: target }).toString()
  })
  const other = await ask('http://127.0.0.1:1/mcp')
  t.equal(other.status, 400)
  t.match(await other.json(), { error: 'invalid_target' }, 'RFC 8707 §2')

  const ours = await ask(resource)
  t.equal(ours.status, 200)
  const { access_token: accessToken } = await ours.json() as { access_token: string }
  const mcp = async (token: string): Promise<Response> => await fetch(resource, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'fetch', version: '1' } } })
  })
  t.equal((await mcp(accessToken)).status, 200, 'the client-credentials token works')
  // Signed by the same key, for another resource: the audience check refuses it.
  const foreign = await ctx.app.devIssuer.mintAccessToken({ aud: ['http://127.0.0.1:1/mcp', 'res_other'] })
  const refused = await mcp(foreign)
  t.equal(refused.status, 401)
  t.match(refused.headers.get('www-authenticate'), /error="invalid_token"/)
})
