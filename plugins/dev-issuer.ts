import fp from 'fastify-plugin'
import { randomBytes } from 'node:crypto'
import { SignJWT, exportJWK, generateKeyPair, type JSONWebKeySet, type JWTPayload } from 'jose'
import type { FastifyInstance } from 'fastify'

export interface DevIssuerOptions {
  /** The `iss` of the tokens it signs, e.g. `http://localhost:10000/dev-issuer`. */
  issuer: string
  /** The `aud` of the token printed at startup. */
  audience: string[]
  scopes: string[]
  /** Where its public keys are served (default `/dev-issuer/jwks`). */
  jwksPath?: string
  /** Lifetime of the printed token (default 12 hours). */
  tokenTtlSec?: number
  /** Print the banner with a ready-to-paste token at startup (default true). */
  announce?: boolean
  /** Refuse to run at all: set when NODE_ENV=production. */
  production?: boolean
}

export interface DevIssuer {
  issuer: string
  jwks: JSONWebKeySet
  /** The one client of the token endpoint, and its secret (made at boot). */
  clientId: string
  clientSecret: string
  mintAccessToken: (claims?: JWTPayload & { ttlSec?: number }) => Promise<string>
}

declare module 'fastify' {
  interface FastifyInstance {
    devIssuer: DevIssuer
  }
}

const DEV_CLIENT_ID = 'dev-client'

/** RFC 6749 §2.3.1: HTTP Basic (form-encoded parts), or the client_id/client_secret form fields. */
function clientCredentials (authorization: string | undefined, form: URLSearchParams): [string | null, string | null] {
  if (authorization?.startsWith('Basic ') === true) {
    const [id = '', secret = ''] = Buffer.from(authorization.slice(6), 'base64').toString('utf8').split(':')
    try {
      return [decodeURIComponent(id.replace(/\+/g, ' ')), decodeURIComponent(secret.replace(/\+/g, ' '))]
    } catch {
      return [null, null]
    }
  }
  return [form.get('client_id'), form.get('client_secret')]
}

/**
 * A development-only authorization server: an ephemeral RS256 key pair made
 * at boot, its JWKS served locally, and tokens shaped like ScaleKit's. It
 * lets `npm start` run the whole protected server with nothing configured.
 */
async function devIssuerPlugin (fastify: FastifyInstance, opts: DevIssuerOptions): Promise<void> {
  if (opts.production === true) throw new Error('dev-issuer: refused when NODE_ENV=production; configure a real issuer')
  const kid = `dev-${randomBytes(6).toString('hex')}`
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true })
  const jwks: JSONWebKeySet = { keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }] }
  const ttl = opts.tokenTtlSec ?? 12 * 3600
  const clientSecret = randomBytes(18).toString('base64url')

  async function mintAccessToken (claims: JWTPayload & { ttlSec?: number } = {}): Promise<string> {
    const { ttlSec = ttl, ...rest } = claims
    const now = Math.floor(Date.now() / 1000)
    return await new SignJWT({
      aud: opts.audience,
      sub: 'dev-user',
      client_id: 'dev-client',
      scopes: opts.scopes,
      scope: opts.scopes.join(' '),
      iat: now,
      exp: now + ttlSec,
      ...rest
    }).setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' }).setIssuer(opts.issuer).sign(privateKey)
  }

  fastify.decorate('devIssuer', { issuer: opts.issuer, jwks, mintAccessToken, clientId: DEV_CLIENT_ID, clientSecret })
  const jwksPath = opts.jwksPath ?? '/dev-issuer/jwks'
  fastify.get(jwksPath, async () => jwks)

  // Enough of an authorization server for MCP discovery to work locally:
  // RFC 8414 metadata at the issuer's well-known URL (§3.1: the issuer's path
  // goes after the well-known prefix) and a client-credentials token endpoint
  // (RFC 6749 §4.4) for one client whose secret is made at boot.
  const issuerUrl = new URL(opts.issuer)
  const issuerPath = issuerUrl.pathname === '/' ? '' : issuerUrl.pathname
  const tokenPath = `${issuerPath}/token`
  const metadata = {
    issuer: opts.issuer,
    // Required by RFC 8414 §2 unless no grant uses it, and by MCP clients regardless.
    authorization_endpoint: `${issuerUrl.origin}${issuerPath}/authorize`,
    token_endpoint: `${issuerUrl.origin}${tokenPath}`,
    jwks_uri: `${issuerUrl.origin}${jwksPath}`,
    grant_types_supported: ['client_credentials'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    response_types_supported: [],
    scopes_supported: opts.scopes
  }
  fastify.get(`/.well-known/oauth-authorization-server${issuerPath}`, async () => metadata)
  fastify.get(`${issuerPath}/authorize`, async (_request, reply) => await reply.code(400).send({
    error: 'unsupported_response_type',
    error_description: 'the development issuer grants tokens by client credentials only: use the client id and secret, or the token, printed at startup'
  }))
  await fastify.register(async function devTokenEndpoint (child) {
    child.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 4096 }, (_request, body, done) => {
      done(null, new URLSearchParams(body as string))
    })
    child.post(tokenPath, async (request, reply) => {
      const form = request.body instanceof URLSearchParams ? request.body : new URLSearchParams()
      const [id, secret] = clientCredentials(request.headers.authorization, form)
      // RFC 6749 §5.2 error responses.
      if (form.get('grant_type') !== 'client_credentials') return await reply.code(400).send({ error: 'unsupported_grant_type' })
      if (id !== DEV_CLIENT_ID || secret !== clientSecret) return await reply.code(401).send({ error: 'invalid_client' })
      const resource = form.get('resource')
      // RFC 8707 §2: a resource this issuer does not serve is invalid_target.
      if (resource !== null && !opts.audience.includes(resource)) return await reply.code(400).send({ error: 'invalid_target' })
      const accessToken = await mintAccessToken({ ttlSec: 3600 })
      return await reply.header('cache-control', 'no-store').send({ access_token: accessToken, token_type: 'Bearer', expires_in: 3600, scope: opts.scopes.join(' ') })
    })
  })

  if (opts.announce !== false) {
    fastify.addHook('onReady', async () => {
      const token = await mintAccessToken()
      fastify.log.warn({ issuer: opts.issuer }, 'DEVELOPMENT ISSUER ACTIVE: tokens are signed by a throwaway key made at boot. Configure SCALEKIT_ENVIRONMENT_URL (or AUTH_ISSUERS and AUTH_JWKS_URI) for real use.')
      // The one deliberate exception to "never log a token": a banner on stdout
      // (not a log line) with a development token, so that a new user can connect.
      process.stdout.write([
        '',
        '================ DEVELOPMENT MODE: NOT FOR PRODUCTION ================',
        ` Issuer: ${opts.issuer} (ephemeral key, valid until restart)`,
        ` MCP endpoint: ${opts.audience[0] ?? ''}`,
        ` Client credentials (for OAuth discovery): ${DEV_CLIENT_ID} / ${clientSecret}`,
        ` Bearer token (${Math.round(ttl / 3600)} h, scope ${opts.scopes.join(' ')}):`,
        '',
        token,
        '',
        '======================================================================',
        ''
      ].join('\n'))
    })
  }
}

export default fp(devIssuerPlugin, { name: 'dev-issuer', fastify: '5.x' })
