import { request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { JwksCache } from '../../lib/auth/jwks-cache.js'
import type { Test } from 'tap'
import { MCP_HEADERS, initializeBody } from './build-app.js'

/** POST /mcp with an initialize request, as a client's first request; `authorization` as given (or none). */
export async function postInitialize (app: FastifyInstance, authorization?: string, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return await app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { ...MCP_HEADERS, ...(authorization !== undefined && { authorization }), ...headers },
    payload: initializeBody()
  })
}

export interface Challenge {
  scheme: string
  params: Record<string, string>
}

/** Parses a `WWW-Authenticate: Bearer k="v", …` challenge (RFC 6750 §3: quoted-string values). */
export function parseChallenge (header: string | string[] | number | undefined): Challenge {
  if (typeof header !== 'string') throw new Error(`no WWW-Authenticate challenge (got ${String(header)})`)
  const [scheme = '', ...rest] = header.split(' ')
  const params: Record<string, string> = {}
  for (const m of rest.join(' ').matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)) {
    params[m[1] as string] = (m[2] as string).replace(/\\(.)/g, '$1')
  }
  return { scheme, params }
}

export function base64url (value: string | Buffer | object): string {
  const bytes = typeof value === 'string' || Buffer.isBuffer(value) ? value : JSON.stringify(value)
  return Buffer.from(bytes).toString('base64url')
}

/** A compact JWS assembled by hand, for tokens no honest library would sign (`alg: none`, HS256 with a public key). */
export function craftToken (header: object, payload: object, signature = ''): string {
  return `${base64url(header)}.${base64url(payload)}.${signature}`
}

/**
 * Captures what is written to stdout (the dev issuer's banner goes there)
 * until `restore()`, or the end of the test. Nothing is passed through: stdout
 * carries the TAP stream, which a banner would garble.
 */
export function captureStdout (t: Test): { written: string[], restore: () => void } {
  const written: string[] = []
  const original = process.stdout.write
  process.stdout.write = ((chunk: string | Uint8Array) => {
    written.push(String(chunk))
    return true
  }) as typeof process.stdout.write
  const restore = (): void => { process.stdout.write = original }
  t.teardown(restore)
  return { written, restore }
}

export interface RawResponse {
  status: number
  headers: IncomingHttpHeaders
  body: string
}

/**
 * A request over a real socket, for what inject cannot send (repeated
 * headers). The app listens on 127.0.0.1 only; fastify.close() (the
 * buildApp teardown) stops it.
 */
export async function requestOverHttp (app: FastifyInstance, path: string, opts: { method?: string, headers?: Record<string, string | string[]>, body?: string } = {}): Promise<RawResponse> {
  if (app.server.listening !== true) await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  return await new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: opts.headers as OutgoingHttpHeaders }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', chunk => { body += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

/** The app's JWKS cache (buildApp with `skipOverride`), or a failure saying it is missing. */
export function jwksCacheOf (app: FastifyInstance): JwksCache {
  if (app.jwksCache === null || app.jwksCache === undefined) throw new Error('no JWKS cache: build the app with { skipOverride: true } and a JWKS URI')
  return app.jwksCache
}
