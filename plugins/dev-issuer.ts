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
  mintAccessToken: (claims?: JWTPayload & { ttlSec?: number }) => Promise<string>
}

declare module 'fastify' {
  interface FastifyInstance {
    devIssuer: DevIssuer
  }
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

  fastify.decorate('devIssuer', { issuer: opts.issuer, jwks, mintAccessToken })
  fastify.get(opts.jwksPath ?? '/dev-issuer/jwks', async () => jwks)

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
