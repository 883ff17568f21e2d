import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import { buildApp } from '../helpers/build-app.js'
import { DOCS_CSP } from '../../routes/docs.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/** Loads a page in real headless Chromium: the DOM after load, and every console message (CSP violations are console errors). */
async function renderInChromium (url: string): Promise<{ dom: string, console: string[] }> {
  const profile = await mkdtemp(join(tmpdir(), 'docs-chromium-'))
  try {
    const { stdout, stderr } = await new Promise<{ stdout: string, stderr: string }>((resolve, reject) => {
      execFile(CHROMIUM, [
        '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-extensions',
        '--disable-background-networking', '--enable-logging=stderr', '--v=0', `--user-data-dir=${profile}`,
        '--virtual-time-budget=3000', '--dump-dom', url
      ], { timeout: 90_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
        if (err !== null && stdout === '') reject(err)
        else resolve({ stdout, stderr })
      })
    })
    return { dom: stdout, console: stderr.split('\n').filter(l => l.includes(':CONSOLE')) }
  } finally {
    await rm(profile, { recursive: true, force: true })
  }
}

t.test('/docs: generated from the live registry, strict CSP, renders in Chromium with no console error', async t => {
  const ctx = await buildApp(t, {}, { skipOverride: true })
  const res = await ctx.app.inject({ url: '/docs' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/html; charset=utf-8/)
  t.equal(res.headers['content-security-policy'], DOCS_CSP)
  t.match(DOCS_CSP, /^default-src 'none'; /, 'everything not listed is refused')
  t.notMatch(res.body, /<script|https?:\/\/(?!localhost|127\.0\.0\.1)[^"<\s]*\.(js|css)/, 'no script, no CDN')

  const tools = ctx.app.mcpToolList()
  t.ok(tools.length >= 2, `${tools.length} tools registered`)
  const metadata = (await ctx.app.inject({ url: '/.well-known/oauth-protected-resource/mcp' })).json()
  t.equal(metadata.resource_documentation, 'http://localhost:10000/docs', 'the default resource_documentation is this page')

  const base = await ctx.app.listen({ port: 0, host: '127.0.0.1' })
  ctx.logs.length = 0
  const { dom, console: messages } = await renderInChromium(`${base}/docs`)
  t.same(messages, [], 'no console message (no error, no CSP violation)')
  t.match(dom, /<h1>Finance news sentiment<\/h1>/)
  for (const tool of tools) {
    t.match(dom, `id="tool-${tool.name}"`, `lists ${tool.name}`)
    for (const argument of Object.keys((tool.inputSchema as { properties?: object }).properties ?? {})) {
      t.match(dom, `<code>${argument}</code>`, `with its argument ${argument}`)
    }
  }
  t.match(dom, 'news:read', 'the scopes')
  t.match(dom, '/.well-known/oauth-protected-resource/mcp', 'where the metadata is')
  t.match(dom, '@modelcontextprotocol/inspector', 'how to connect with MCP Inspector')
  t.match(dom, 'StreamableHTTPClientTransport', 'and with the SDK')
  t.ok(ctx.logs.some(l => l.includes('"url":"/docs/style.css"') && l.includes('"statusCode":200')), 'the stylesheet was loaded (CSP allows it)')

  const css = await ctx.app.inject({ url: '/docs/style.css' })
  t.match(css.headers['content-type'], /^text\/css/)
  t.equal(css.headers['x-content-type-options'], 'nosniff')
})

t.test('control: the same check catches a CSP violation', async t => {
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  app.get('/', async (_request, reply) => reply.header('content-security-policy', DOCS_CSP).type('text/html').send('<!doctype html><p>x</p><script>document.title = "ran"</script>'))
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  const { console: messages } = await renderInChromium(`${base}/`)
  t.ok(messages.some(m => /Content Security Policy|Refused to execute/i.test(m)), `the inline script is refused and reported (${messages.length} message(s))`)
})

t.test('argument types, constraints and tools without a title, arguments or hints', async t => {
  const { default: docsRoutes } = await import('../../routes/docs.js')
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  app.decorate('protectedResourceMetadata', { resource: 'https://api.example/mcp', authorization_servers: ['https://issuer'], bearer_methods_supported: ['header'], scopes_supported: ['a', 'b'] })
  app.decorate('mcpToolList', () => [
    { name: 'bare', inputSchema: { type: 'object' } },
    {
      name: 'rich<b>',
      title: 'Rich',
      description: 'All <kinds>',
      annotations: { readOnlyHint: true, destructiveHint: false, title: 'x' },
      outputSchema: { type: 'object', properties: { a: {}, b: {} } },
      inputSchema: {
        type: 'object',
        required: ['n'],
        properties: {
          n: { type: 'integer', minimum: 1, maximum: 9, default: 3, description: 'a number' },
          lo: { type: 'number', minimum: 0 },
          hi: { type: 'number', maximum: 5 },
          either: { anyOf: [{ type: 'string' }, { type: 'null' }] },
          kinds: { type: ['string', 'number'] },
          list: { type: 'array', items: { enum: ['x', 'y'] }, minItems: 1 },
          few: { type: 'array', maxItems: 2 },
          free: {}
        }
      }
    }
  ])
  await app.register(docsRoutes, { serverInfo: { name: 'srv', version: '1.2.3' }, metadataUrl: 'https://api.example/.well-known/oauth-protected-resource/mcp' })
  const html = (await app.inject({ url: '/docs' })).body
  t.match(html, '<h1>srv</h1>', 'the name when there is no title')
  t.match(html, '2 tools:')
  t.match(html, '<h3><code>bare</code></h3>\n\n<p></p>\n<p>No arguments.</p>')
  t.match(html, 'rich&#60;b&#62;', 'names are escaped')
  t.match(html, 'All &#60;kinds&#62;')
  t.match(html, '<span>readOnly</span>')
  t.notMatch(html, '<span>destructive</span>', 'only hints that are true')
  t.match(html, '<code>n</code> <span class="req">required</span>')
  t.match(html, '(1–9, default 3)')
  t.match(html, '(0–…)')
  t.match(html, '(…–5)')
  t.match(html, '<code>string | null</code>')
  t.match(html, '<code>string | number</code>')
  t.match(html, '<code>&#34;x&#34; | &#34;y&#34;[]</code>')
  t.match(html, '(1–… items)')
  t.match(html, '(0–2 items)')
  t.match(html, '<code>array</code>')
  t.match(html, '<code>any</code>')
  t.match(html, 'Structured result fields: <code>a</code>, <code>b</code>.')
  t.equal((await app.inject({ url: '/docs' })).body, html, 'built once')
})

t.test('one tool: singular', async t => {
  const { default: docsRoutes } = await import('../../routes/docs.js')
  const app = Fastify()
  t.teardown(async () => { await app.close() })
  app.decorate('protectedResourceMetadata', { resource: 'https://api.example/mcp', authorization_servers: ['https://issuer'], bearer_methods_supported: ['header'], scopes_supported: ['a'] })
  app.decorate('mcpToolList', () => [{ name: 'only', description: 'd', inputSchema: { type: 'object', properties: {} } }])
  await app.register(docsRoutes, { serverInfo: { name: 'srv', version: '1', title: 'T' }, metadataUrl: 'https://m' })
  t.match((await app.inject({ url: '/docs' })).body, '1 tool: ')
})
