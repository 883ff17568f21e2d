import t from 'tap'
import { AccessTokenVerifier, AuthFailure } from '../../../lib/auth/access-token-verifier.js'
import { JwksCache } from '../../../lib/auth/jwks-cache.js'
import { LocalIssuer } from '../../helpers/issuer.js'

// The verifier used on its own (outside the auth plugin, which checks scopes per route):
// its own requiredScopes still hold, for callers that want one verification to mean "allowed".
t.test('a verifier with required scopes refuses a token without them, from the cache too', async t => {
  const issuer = await LocalIssuer.start()
  t.teardown(() => issuer.close())
  const resource = 'http://localhost:10000/mcp'
  issuer.audience = [resource]
  const keys = new JwksCache({ uri: issuer.jwksUri, timeoutMs: 2000, cooldownMs: 0, refreshMs: 600_000 })
  t.teardown(() => keys.close())
  await keys.start()
  const verifier = new AccessTokenVerifier({
    issuers: [issuer.url],
    audiences: [resource],
    algorithms: ['RS256', 'ES256'],
    requiredScopes: ['news:read'],
    clockToleranceSec: 10,
    getKey: keys.getKey,
    cacheSize: 10
  })
  t.same(verifier.requiredScopes, ['news:read'])
  const allowed = await issuer.token({ claims: { scopes: ['news:read'] } })
  t.equal((await verifier.verify(allowed)).scopes.includes('news:read'), true)
  const lacking = await issuer.token({ claims: { scopes: ['news:write'] } })
  for (let i = 0; i < 2; i++) {
    const err = await verifier.verify(lacking).then(() => undefined, (e: unknown) => e)
    t.ok(err instanceof AuthFailure, i === 0 ? 'verified, then refused' : 'refused again from the cache')
    t.equal((err as AuthFailure).kind, 'insufficient_scope')
    t.match((err as AuthFailure).message, /lacks the required scope 'news:read'/)
  }
})
