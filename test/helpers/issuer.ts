import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createHash, randomBytes } from 'node:crypto'
import { SignJWT, exportJWK, generateKeyPair, type JWK, type JWTPayload } from 'jose'

type KeyPair = Awaited<ReturnType<typeof generateKeyPair>>

export interface SigningKey {
  kid: string
  alg: 'RS256' | 'ES256'
  pair: KeyPair
  publicJwk: JWK
}

/**
 * How the JWKS endpoint behaves: tests switch it to fail in every way a real
 * one can. `huge` streams 2 MB chunked; `huge-declared` sends 2 MB with a
 * Content-Length that says so.
 */
export type JwksMode = 'ok' | 'down' | 'slow' | 'huge' | 'huge-declared' | 'malformed' | 'no-keys-array'

/** How the RFC 7662 introspection endpoint behaves (`slow` answers after `slowMs`). */
export type IntrospectionMode = 'ok' | 'down' | 'slow' | 'malformed'

interface AuthorizationCode { clientId: string, redirectUri: string, challenge: string, scope: string, resource: string | null }

export interface TokenOptions {
  /** Claims to add or override (`undefined` removes a default claim). */
  claims?: Record<string, unknown>
  key?: SigningKey
  /** Seconds from now; negative for an expired token. */
  expiresIn?: number
  header?: Record<string, unknown>
}

export async function makeKey (alg: 'RS256' | 'ES256' = 'RS256'): Promise<SigningKey> {
  const pair = await generateKeyPair(alg, { extractable: true })
  const kid = `${alg.toLowerCase()}-${randomBytes(4).toString('hex')}`
  return { kid, alg, pair, publicJwk: { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' } }
}

/**
 * A local, ScaleKit-shaped authorization server on 127.0.0.1: a JWKS endpoint
 * (counting its hits, switchable into failure modes), RFC 8414 metadata, and a
 * client-credentials token endpoint for the SDK's ClientCredentialsProvider.
 */
export class LocalIssuer {
  server: Server
  url = ''
  /** `<url>/resources/res_…`, the per-resource issuer form ScaleKit uses. */
  resourceId = `res_${randomBytes(8).toString('hex').replace(/[a-f]/g, '')}42`
  keys: SigningKey[] = []
  jwksMode: JwksMode = 'ok'
  jwksHits = 0
  tokenRequests = 0
  /** The resource identifier tokens are minted for (set by the test). */
  audience: string[] = []
  clients = new Map<string, string>([['test-client', 'test-secret']])
  slowMs = 3000
  /** Opaque tokens the introspection endpoint knows, with what it answers for them. */
  opaqueTokens = new Map<string, Record<string, unknown>>()
  introspectionMode: IntrospectionMode = 'ok'
  introspectionHits = 0
  /** The resource server's own credentials at the introspection endpoint. */
  resourceServer = { clientId: 'rs-client', clientSecret: 'rs-secret' }
  /** Scopes each authorization request asked for, in order: what a step-up looks like from the issuer's side. */
  authorizationScopes: string[] = []
  readonly #codes = new Map<string, AuthorizationCode>()

  private constructor () {
    this.server = createServer((req, res) => { this.handle(req, res).catch(() => { res.statusCode = 500; res.end() }) })
  }

  static async start (): Promise<LocalIssuer> {
    const issuer = new LocalIssuer()
    issuer.keys.push(await makeKey('RS256'), await makeKey('ES256'))
    await new Promise<void>(resolve => issuer.server.listen(0, '127.0.0.1', resolve))
    issuer.url = `http://127.0.0.1:${(issuer.server.address() as AddressInfo).port}`
    issuer.server.unref()
    return issuer
  }

  get jwksUri (): string {
    return `${this.url}/keys`
  }

  get introspectionEndpoint (): string {
    return `${this.url}/oauth/introspect`
  }

  /** A random opaque token the introspection endpoint reports as active, with these members. */
  opaqueToken (members: Record<string, unknown> = {}): string {
    const token = randomBytes(24).toString('base64url')
    this.opaqueTokens.set(token, {
      active: true,
      iss: this.url,
      sub: 'user_opaque',
      client_id: 'skc_test',
      aud: [...this.audience],
      scope: 'news:read',
      exp: Math.floor(Date.now() / 1000) + 600,
      ...members
    })
    return token
  }

  get resourceIssuer (): string {
    return `${this.url}/resources/${this.resourceId}`
  }

  /** Environment variables a ScaleKit tutorial user would have, pointed at this issuer. */
  scalekitEnv (resource: string): Record<string, string> {
    return {
      SCALEKIT_ENVIRONMENT_URL: this.url,
      SCALEKIT_CLIENT_ID: 'skc_test',
      SCALEKIT_CLIENT_SECRET: 'test-secret-never-logged',
      SCALEKIT_AUTHORIZATION_SERVERS: this.resourceIssuer,
      SCALEKIT_AUDIENCE_NAME: resource,
      SCALEKIT_RESOURCE_METADATA_URL: `${new URL(resource).origin}/.well-known/oauth-protected-resource/mcp`,
      SCALEKIT_RESOUCE_NAME: 'Finance news (test)',
      SCALEKIT_RESOUCE_DOCS_URL: `${new URL(resource).origin}/docs`
    }
  }

  async token (opts: TokenOptions = {}): Promise<string> {
    const key = opts.key ?? this.keys[0] as SigningKey
    const now = Math.floor(Date.now() / 1000)
    const claims: Record<string, unknown> = {
      iss: this.url,
      sub: 'user_123',
      aud: [...this.audience, this.resourceId],
      client_id: 'skc_test',
      scopes: ['news:read'],
      iat: now,
      nbf: now - 5,
      exp: now + (opts.expiresIn ?? 600),
      jti: randomBytes(8).toString('hex'),
      ...opts.claims
    }
    for (const k of Object.keys(claims)) if (claims[k] === undefined) delete claims[k]
    return await new SignJWT(claims as JWTPayload)
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT', ...opts.header })
      .sign(key.pair.privateKey)
  }

  /** Adds a new key and drops the oldest: what a key rotation at the issuer looks like. */
  async rotate (): Promise<SigningKey> {
    const key = await makeKey('RS256')
    this.keys = [key, ...this.keys.slice(0, -1)]
    return key
  }

  async close (): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>(resolve => this.server.close(() => resolve()))
  }

  private json (res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(JSON.stringify(body))
  }

  private async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url)
    if (url.pathname === '/keys') return this.jwks(res)
    if (url.pathname.startsWith('/.well-known/oauth-authorization-server') || url.pathname.startsWith('/.well-known/openid-configuration')) {
      const issuer = url.pathname.endsWith(this.resourceId) ? this.resourceIssuer : this.url
      return this.json(res, 200, {
        issuer,
        token_endpoint: `${this.url}/oauth/token`,
        authorization_endpoint: `${this.url}/oauth/authorize`,
        jwks_uri: this.jwksUri,
        introspection_endpoint: this.introspectionEndpoint,
        grant_types_supported: ['client_credentials', 'authorization_code'],
        token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
        response_types_supported: ['code'],
        code_challenge_methods_supported: ['S256'],
        scopes_supported: ['news:read']
      })
    }
    if (url.pathname === '/oauth/token' && req.method === 'POST') return await this.tokenEndpoint(req, res)
    if (url.pathname === '/oauth/authorize' && req.method === 'GET') return this.authorize(url, res)
    if (url.pathname === '/oauth/introspect' && req.method === 'POST') return await this.introspect(req, res)
    this.json(res, 404, { error: 'not_found' })
  }

  private jwks (res: ServerResponse): void {
    this.jwksHits++
    switch (this.jwksMode) {
      case 'down':
        return this.json(res, 503, { error: 'unavailable' })
      case 'slow':
        setTimeout(() => this.json(res, 200, { keys: this.keys.map(k => k.publicJwk) }), this.slowMs).unref()
        return
      case 'huge':
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ keys: this.keys.map(k => k.publicJwk), padding: 'x'.repeat(2 * 1024 * 1024) }))
        return
      case 'huge-declared': {
        const body = JSON.stringify({ keys: this.keys.map(k => k.publicJwk), padding: 'x'.repeat(2 * 1024 * 1024) })
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
        res.end(body)
        return
      }
      case 'malformed':
        res.writeHead(200, { 'content-type': 'application/json' })
        res.end('{"keys": [')
        return
      case 'no-keys-array':
        return this.json(res, 200, { keys: 'none' })
      default:
        return this.json(res, 200, { keys: this.keys.map(k => k.publicJwk) })
    }
  }

  /** A form body and the client it authenticates (client_secret_basic or client_secret_post). */
  private async clientForm (req: IncomingMessage): Promise<{ form: URLSearchParams, clientId: string | null, secret: string | null }> {
    let body = ''
    for await (const chunk of req) body += String(chunk)
    const form = new URLSearchParams(body)
    let clientId = form.get('client_id')
    let secret = form.get('client_secret')
    const basic = req.headers.authorization
    if (basic?.startsWith('Basic ') === true) {
      const [id, pw] = Buffer.from(basic.slice(6), 'base64').toString().split(':')
      clientId = decodeURIComponent(id ?? '')
      secret = decodeURIComponent(pw ?? '')
    }
    return { form, clientId, secret }
  }

  /**
   * RFC 6749 §4.4 client credentials and §4.1 authorization code (with PKCE,
   * RFC 7636), with RFC 8707 `resource` becoming the audience (as ScaleKit does).
   */
  private async tokenEndpoint (req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.tokenRequests++
    const { form, clientId, secret } = await this.clientForm(req)
    const grant = form.get('grant_type')
    if (grant !== 'client_credentials' && grant !== 'authorization_code') return this.json(res, 400, { error: 'unsupported_grant_type' })
    if (clientId === null || this.clients.get(clientId) !== secret) return this.json(res, 401, { error: 'invalid_client' })
    let resource = form.get('resource')
    let scope = form.get('scope') ?? 'news:read'
    let sub = clientId
    if (grant === 'authorization_code') {
      const code = this.#codes.get(form.get('code') ?? '')
      this.#codes.delete(form.get('code') ?? '')
      const verifier = form.get('code_verifier') ?? ''
      if (code === undefined || code.clientId !== clientId || code.redirectUri !== form.get('redirect_uri') ||
        createHash('sha256').update(verifier).digest('base64url') !== code.challenge) {
        return this.json(res, 400, { error: 'invalid_grant' })
      }
      resource = code.resource
      scope = code.scope
      sub = 'user_123'
    }
    const accessToken = await this.token({
      claims: {
        sub,
        client_id: clientId,
        aud: resource === null ? this.audience : [resource, this.resourceId],
        scopes: undefined,
        scope
      }
    })
    this.json(res, 200, { access_token: accessToken, token_type: 'Bearer', expires_in: 600, scope })
  }

  /** RFC 6749 §4.1.1: the user approves at once, granting the scopes asked for. */
  private authorize (url: URL, res: ServerResponse): void {
    const p = url.searchParams
    const clientId = p.get('client_id') ?? ''
    const redirectUri = p.get('redirect_uri') ?? ''
    const challenge = p.get('code_challenge') ?? ''
    if (!this.clients.has(clientId) || p.get('response_type') !== 'code' || p.get('code_challenge_method') !== 'S256' || challenge === '' || redirectUri === '') {
      return this.json(res, 400, { error: 'invalid_request' })
    }
    const scope = p.get('scope') ?? 'news:read'
    this.authorizationScopes.push(scope)
    const code = randomBytes(16).toString('base64url')
    this.#codes.set(code, { clientId, redirectUri, challenge, scope, resource: p.get('resource') })
    const to = new URL(redirectUri)
    to.searchParams.set('code', code)
    if (p.get('state') !== null) to.searchParams.set('state', p.get('state') as string)
    res.writeHead(302, { location: to.href })
    res.end()
  }

  /** RFC 7662 §2: protected by the resource server's own credentials. */
  private async introspect (req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.introspectionHits++
    const { form, clientId, secret } = await this.clientForm(req)
    switch (this.introspectionMode) {
      case 'down':
        return this.json(res, 503, { error: 'unavailable' })
      case 'slow':
        await new Promise(resolve => setTimeout(resolve, this.slowMs).unref())
        break
      case 'malformed':
        return this.json(res, 200, { status: 'fine' })
    }
    if (clientId !== this.resourceServer.clientId || secret !== this.resourceServer.clientSecret) return this.json(res, 401, { error: 'invalid_client' })
    this.json(res, 200, this.opaqueTokens.get(form.get('token') ?? '') ?? { active: false })
  }
}
