import t from 'tap'
import { buildApp } from '../helpers/build-app.js'

t.test('/health: alive, public', async t => {
  const ctx = await buildApp(t)
  const res = await ctx.app.inject({ url: '/health' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { status: 'ok' })
})

t.test('/ready: 200 once the signing keys are loaded', async t => {
  const ctx = await buildApp(t)
  t.ok(ctx.issuer.jwksHits >= 1, 'the keys were fetched while booting')
  const res = await ctx.app.inject({ url: '/ready' })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['retry-after'], undefined)
  t.same(res.json(), { status: 'ready', checks: { config: 'ok', signingKeys: 'ok' } })
})

t.test('/ready: 503 with Retry-After while the keys are unavailable', async t => {
  const ctx = await buildApp(t, { SCALEKIT_ENVIRONMENT_URL: 'http://127.0.0.1:1', AUTH_ISSUERS: 'http://127.0.0.1:1' })
  const res = await ctx.app.inject({ url: '/ready' })
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '5')
  t.same(res.json(), { status: 'not_ready', checks: { config: 'ok', signingKeys: 'unavailable' } })
})
