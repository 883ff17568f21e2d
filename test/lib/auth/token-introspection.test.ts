import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { TokenIntrospector } from '../../../lib/auth/token-introspection.js'
import { LocalIssuer } from '../../helpers/issuer.js'

/** The introspector on its own, against the local issuer's RFC 7662 endpoint. */

const RESOURCE = 'https://api.example.com/'
const issuer = await LocalIssuer.start()
issuer.audience = [RESOURCE]
t.teardown(() => issuer.close())

function introspector (options: { cacheTtlMs?: number } = {}): TokenIntrospector {
  return new TokenIntrospector({ endpoint: issuer.introspectionEndpoint, ...issuer.resourceServer, issuers: [issuer.url], audiences: [RESOURCE], ...options })
}

t.test('a client\'s token (no sub) is the client\'s principal; no scope means no scopes; no exp means no expiry', async t => {
  const auth = await introspector().verify(issuer.opaqueToken({ sub: undefined, client_id: 'svc_reporting', scope: undefined, exp: undefined }))
  t.equal(auth.subject, 'svc_reporting')
  t.equal(auth.clientId, 'svc_reporting')
  t.equal(auth.principal, 'client:svc_reporting', 'a client is never taken for a user of the same name')
  t.same(auth.scopes, [])
  t.equal(auth.expiresAt, undefined)

  const user = await introspector().verify(issuer.opaqueToken({ sub: 'alice', scope: 'news:read  extra', exp: Math.floor(Date.now() / 1000) + 600 }))
  t.equal(user.principal, 'user:alice')
  t.same(user.scopes, ['news:read', 'extra'], 'empty items of a doubled space are dropped')
  t.type(user.expiresAt, 'number')
})

t.test('an answer is reused until cacheTtlMs, then asked again (a revocation shows)', async t => {
  const checker = introspector({ cacheTtlMs: 50 })
  const token = issuer.opaqueToken({ sub: 'bob' })
  t.equal((await checker.verify(token)).subject, 'bob')
  t.equal((await checker.verify(token)).subject, 'bob')
  t.equal(checker.calls, 1, 'the second check came from the cache')
  await sleep(80)
  // Revoked meanwhile: the authorization server now says inactive.
  const entry = issuer.opaqueTokens.get(token) as Record<string, unknown>
  entry.active = false
  await t.rejects(checker.verify(token), { kind: 'invalid_token', message: /not active/ } as never)
  t.equal(checker.calls, 2, 'past its time, the answer was asked for again')
})
