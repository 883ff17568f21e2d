import t from 'tap'
import Fastify from 'fastify'
import cors from '../../plugins/cors.js'
import { buildApp } from '../helpers/build-app.js'
import { postInitialize } from '../helpers/auth-requests.js'

const REQUEST_HEADERS = ['authorization', 'content-type', 'mcp-session-id', 'mcp-protocol-version', 'last-event-id']

function headerList (value: string | string[] | number | undefined): string[] {
  return String(value ?? '').split(',').map(s => s.trim().toLowerCase()).filter(s => s !== '')
}

t.test('default: loopback origins (MCP Inspector) may call /mcp from a browser', async t => {
  const ctx = await buildApp(t)
  const inject = async (origin: string) => await ctx.app.inject({
    method: 'OPTIONS',
    url: '/mcp',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': REQUEST_HEADERS.join(',') }
  })

  for (const origin of ['http://localhost:6274', 'http://127.0.0.1:3000', 'http://[::1]:8080', 'https://localhost']) {
    const res = await inject(origin)
    t.equal(res.statusCode, 204, origin)
    t.equal(res.headers['access-control-allow-origin'], origin, `${origin}: allowed`)
    t.equal(res.headers['access-control-allow-credentials'], undefined, 'bearer tokens, not cookies: no credentials mode')
    const allowed = headerList(res.headers['access-control-allow-headers'])
    for (const h of REQUEST_HEADERS) t.ok(allowed.includes(h), `${origin}: may send ${h}`)
    t.same(headerList(res.headers['access-control-allow-methods']), ['get', 'post', 'delete', 'options'])
    t.equal(res.headers['access-control-max-age'], '600')
  }

  for (const origin of ['https://evil.example', 'http://localhost.evil.example', 'http://localhost:6274.evil.example', 'null']) {
    const res = await inject(origin)
    t.equal(res.headers['access-control-allow-origin'], undefined, `${origin}: not allowed`)
  }

  // On the actual request, the browser must be able to read the session id and the challenge.
  for (const authorization of [`Bearer ${ctx.token}`, undefined]) {
    const res = await postInitialize(ctx.app, authorization, { origin: 'http://localhost:6274' })
    t.equal(res.headers['access-control-allow-origin'], 'http://localhost:6274')
    const exposed = headerList(res.headers['access-control-expose-headers'])
    t.ok(exposed.includes('mcp-session-id'), 'Mcp-Session-Id exposed')
    t.ok(exposed.includes('www-authenticate'), 'WWW-Authenticate exposed')
  }
})

t.test('ALLOWED_ORIGINS replaces the loopback default', async t => {
  const ctx = await buildApp(t, { ALLOWED_ORIGINS: 'https://app.example.com' })
  const preflight = async (origin: string) => (await ctx.app.inject({
    method: 'OPTIONS', url: '/mcp', headers: { origin, 'access-control-request-method': 'POST' }
  })).headers['access-control-allow-origin']
  t.equal(await preflight('https://app.example.com'), 'https://app.example.com')
  t.equal(await preflight('http://localhost:6274'), undefined)
  t.equal(await preflight('https://app.example.com.evil.example'), undefined)
  t.equal((await ctx.app.inject({ url: '/.well-known/oauth-protected-resource', headers: { origin: 'https://other.example' } })).headers['access-control-allow-origin'], '*', 'discovery stays public')
})

t.test('ALLOWED_ORIGINS=* allows any origin, never with credentials', async t => {
  const ctx = await buildApp(t, { ALLOWED_ORIGINS: '*' })
  const preflight = await ctx.app.inject({ method: 'OPTIONS', url: '/mcp', headers: { origin: 'https://anywhere.example', 'access-control-request-method': 'POST' } })
  t.equal(preflight.headers['access-control-allow-origin'], '*')
  t.equal(preflight.headers['access-control-allow-credentials'], undefined)
  const res = await postInitialize(ctx.app, `Bearer ${ctx.token}`, { origin: 'https://anywhere.example' })
  t.equal(res.statusCode, 200)
  t.equal(res.headers['access-control-allow-origin'], '*')
  t.equal(res.headers['access-control-allow-credentials'], undefined)
})

t.test('publicPrefixes decides what any origin may read', async t => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(cors, { origins: ['https://app.example.com'], publicPrefixes: ['/public/'] })
  app.get('/public/doc', async () => ({ ok: true }))
  app.get('/.well-known/x', async () => ({ ok: true }))
  const origin = 'https://other.example'
  t.equal((await app.inject({ url: '/public/doc', headers: { origin } })).headers['access-control-allow-origin'], '*')
  t.equal((await app.inject({ url: '/.well-known/x', headers: { origin } })).headers['access-control-allow-origin'], undefined)
  t.equal((await app.inject({ url: '/.well-known/x', headers: { origin: 'https://app.example.com' } })).headers['access-control-allow-origin'], 'https://app.example.com')
})
