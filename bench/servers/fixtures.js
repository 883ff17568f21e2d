// The world around the servers under test, in a process of its own so that
// neither the load generator nor a server pays for it: a tiny authorization
// server (an RS256 key, its JWKS on 127.0.0.1) and a fake Alpha Vantage
// serving bench/fixtures/news-sentiment.json.
import { createServer } from 'node:http'
import { readFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { SignJWT, exportJWK, generateKeyPair } from 'jose'
import { childProtocol } from '../lib/child-protocol.js'

const newsBody = readFileSync(new URL('../fixtures/news-sentiment.json', import.meta.url))

let server
let upstreamHits = 0
let jwksHits = 0

async function listen (handler) {
  const s = createServer(handler)
  await new Promise((resolve, reject) => {
    s.once('error', reject)
    s.listen(0, '127.0.0.1', resolve)
  })
  return s
}

/**
 * `token` is for `subject`; `tokens` has one per entry of `subjects` (by
 * subject), for a run whose callers must not share the per-subject caps.
 */
async function start ({ audience, subject = 'bench-user', subjects = [], scope = 'news:read', tokenTtlSec = 3600 }) {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true })
  const kid = `bench-${randomBytes(4).toString('hex')}`
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' }] })

  server = await listen((req, res) => {
    const path = req.url.split('?')[0]
    if (path === '/keys') {
      jwksHits++
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(jwks)
    } else if (path === '/query') {
      upstreamHits++
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(newsBody)
    } else {
      res.writeHead(404, { 'content-type': 'application/json' })
      res.end('{"error":"not_found"}')
    }
  })
  const origin = `http://127.0.0.1:${server.address().port}`
  const now = Math.floor(Date.now() / 1000)
  const sign = (sub) => new SignJWT({ sub, client_id: 'bench-client', scope, jti: randomBytes(8).toString('hex') })
    .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
    .setIssuer(origin)
    .setAudience(audience)
    .setIssuedAt(now)
    .setNotBefore(now - 5)
    .setExpirationTime(now + tokenTtlSec)
    .sign(privateKey)
  const tokens = {}
  for (const sub of subjects) tokens[sub] = await sign(sub)
  return { issuer: origin, jwksUri: `${origin}/keys`, upstreamUrl: `${origin}/query`, token: await sign(subject), tokens }
}

childProtocol(start, {
  hits: () => ({ upstream: upstreamHits, jwks: jwksHits })
}, async () => {
  server?.closeAllConnections()
  await new Promise(resolve => server === undefined ? resolve() : server.close(resolve))
})
