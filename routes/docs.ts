import type { FastifyInstance } from 'fastify'

export interface DocsRoutesOptions {
  /** The server's name and version, as initialize reports them. */
  serverInfo: { name: string, version: string, title?: string }
  /** Where the protected-resource metadata is published (RFC 9728 §3). */
  metadataUrl: string
}

interface JsonSchemaNode {
  type?: string | string[]
  description?: string
  properties?: Record<string, JsonSchemaNode>
  required?: string[]
  items?: JsonSchemaNode
  enum?: unknown[]
  default?: unknown
  minimum?: number
  maximum?: number
  minItems?: number
  maxItems?: number
  pattern?: string
  anyOf?: JsonSchemaNode[]
}

/**
 * No script, no remote anything: the page is text and one stylesheet from
 * this origin. `default-src 'none'` refuses everything not listed.
 */
export const DOCS_CSP = "default-src 'none'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

const STYLE = `:root{color-scheme:light dark;--fg:#1b1f24;--bg:#fff;--muted:#57606a;--line:#d0d7de;--code:#f6f8fa;--accent:#0a58ca}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--bg:#0d1117;--muted:#8d96a0;--line:#30363d;--code:#161b22;--accent:#58a6ff}}
*{box-sizing:border-box}
body{margin:0 auto;max-width:60rem;padding:2rem 1.25rem 4rem;font:16px/1.55 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);background:var(--bg)}
h1{font-size:1.8rem;margin:0 0 .25rem}h2{margin-top:2.5rem;border-bottom:1px solid var(--line);padding-bottom:.3rem}h3{margin-top:2rem}
a{color:var(--accent)}p.lead{color:var(--muted);margin-top:0}
code,pre{font:13.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--code);border-radius:4px}
code{padding:.1em .3em}pre{padding: .9rem 1rem;overflow-x:auto;border:1px solid var(--line)}pre code{padding:0;background:none}
table{border-collapse:collapse;width:100%;margin:.75rem 0}th,td{text-align:left;vertical-align:top;padding:.45rem .6rem;border-bottom:1px solid var(--line)}
th{font-weight:600;color:var(--muted);font-size:.9rem}
.tool{border:1px solid var(--line);border-radius:8px;padding:0 1.1rem 1rem;margin:1.25rem 0}
.hints span{display:inline-block;margin:0 .35rem .35rem 0;padding:.05rem .5rem;border:1px solid var(--line);border-radius:999px;font-size:.8rem;color:var(--muted)}
.req{color:#cf222e;font-size:.8rem}
`

function escapeHtml (value: unknown): string {
  return String(value).replace(/[&<>"']/g, c => `&#${c.charCodeAt(0)};`)
}

function typeOf (node: JsonSchemaNode): string {
  if (node.anyOf !== undefined) return node.anyOf.map(typeOf).join(' | ')
  if (node.enum !== undefined) return node.enum.map(v => JSON.stringify(v)).join(' | ')
  const type = Array.isArray(node.type) ? node.type.join(' | ') : node.type ?? 'any'
  if (type === 'array' && node.items !== undefined) return `${typeOf(node.items)}[]`
  return type
}

function constraintsOf (node: JsonSchemaNode): string {
  const parts: string[] = []
  if (node.minimum !== undefined || node.maximum !== undefined) parts.push(`${node.minimum ?? '…'}–${node.maximum ?? '…'}`)
  if (node.minItems !== undefined || node.maxItems !== undefined) parts.push(`${node.minItems ?? 0}–${node.maxItems ?? '…'} items`)
  if (node.default !== undefined) parts.push(`default ${JSON.stringify(node.default)}`)
  return parts.join(', ')
}

function argumentsTable (schema: JsonSchemaNode): string {
  const properties = Object.entries(schema.properties ?? {})
  if (properties.length === 0) return '<p>No arguments.</p>'
  const required = new Set(schema.required ?? [])
  const rows = properties.map(([name, node]) => `<tr><td><code>${escapeHtml(name)}</code>${required.has(name) ? ' <span class="req">required</span>' : ''}</td>` +
    `<td><code>${escapeHtml(typeOf(node))}</code></td><td>${escapeHtml(node.description ?? '')}${constraintsOf(node) === '' ? '' : ` <small>(${escapeHtml(constraintsOf(node))})</small>`}</td></tr>`)
  return `<table><thead><tr><th>argument</th><th>type</th><th>meaning</th></tr></thead><tbody>${rows.join('')}</tbody></table>`
}

interface ListedTool {
  name: string
  title?: string
  description?: string
  inputSchema: object
  outputSchema?: object
  annotations?: Record<string, unknown>
}

function toolSection (tool: ListedTool): string {
  const hints = Object.entries(tool.annotations ?? {})
    .filter(([key, value]) => key.endsWith('Hint') && value === true)
    .map(([key]) => `<span>${escapeHtml(key.replace(/Hint$/, ''))}</span>`).join('')
  const output = tool.outputSchema as JsonSchemaNode | undefined
  return `<section class="tool" id="tool-${escapeHtml(tool.name)}">
<h3><code>${escapeHtml(tool.name)}</code>${tool.title === undefined ? '' : ` — ${escapeHtml(tool.title)}`}</h3>
${hints === '' ? '' : `<p class="hints">${hints}</p>`}
<p>${escapeHtml(tool.description ?? '')}</p>
${argumentsTable(tool.inputSchema as JsonSchemaNode)}
${output?.properties === undefined ? '' : `<p>Structured result fields: ${Object.keys(output.properties).map(k => `<code>${escapeHtml(k)}</code>`).join(', ')}.</p>`}
</section>`
}

/**
 * `GET /docs`: the page RFC 9728 `resource_documentation` points at, made
 * from the live tool registry and the published metadata, so it cannot
 * drift from what the server offers. Plain HTML and one stylesheet, under a
 * strict Content-Security-Policy.
 */
export default async function docsRoutes (fastify: FastifyInstance, opts: DocsRoutesOptions): Promise<void> {
  let page: string | undefined
  function render (): string {
    const metadata = fastify.protectedResourceMetadata
    const tools = fastify.mcpToolList() as unknown as ListedTool[]
    const title = opts.serverInfo.title ?? opts.serverInfo.name
    const resource = metadata.resource
    const scopes = metadata.scopes_supported
    return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} — MCP server</title>
<link rel="stylesheet" href="/docs/style.css">
</head>
<body>
<header>
<h1>${escapeHtml(title)}</h1>
<p class="lead">An MCP server (Streamable HTTP) · <code>${escapeHtml(opts.serverInfo.name)}</code> ${escapeHtml(opts.serverInfo.version)}</p>
</header>
<main>
<h2 id="connect">Connect</h2>
<table><tbody>
<tr><th>MCP endpoint</th><td><code>${escapeHtml(resource)}</code></td></tr>
<tr><th>Protected-resource metadata</th><td><a href="${escapeHtml(opts.metadataUrl)}"><code>${escapeHtml(opts.metadataUrl)}</code></a> (RFC 9728)</td></tr>
<tr><th>Authorization servers</th><td>${metadata.authorization_servers.map(s => `<code>${escapeHtml(s)}</code>`).join('<br>')}</td></tr>
<tr><th>Scopes</th><td>${scopes.map(s => `<code>${escapeHtml(s)}</code>`).join(' ')}</td></tr>
</tbody></table>
<p>Every request carries <code>Authorization: Bearer &lt;access token&gt;</code>, a token issued for the resource
<code>${escapeHtml(resource)}</code> (RFC 8707) with the scope ${scopes.map(s => `<code>${escapeHtml(s)}</code>`).join(' ')}.
Without one the server answers <code>401</code> with a <code>WWW-Authenticate</code> challenge naming the metadata above,
from which an MCP client finds the authorization server.</p>

<h3>MCP Inspector</h3>
<pre><code>npx @modelcontextprotocol/inspector</code></pre>
<p>Transport <b>Streamable HTTP</b>, URL <code>${escapeHtml(resource)}</code>; under <b>Authentication</b> give the
bearer token (or let the Inspector run the OAuth flow), then <b>Connect</b> and <b>List tools</b>.</p>

<h3>TypeScript SDK</h3>
<pre><code>import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'

const transport = new StreamableHTTPClientTransport(new URL(${escapeHtml(JSON.stringify(resource))}), {
  requestInit: { headers: { Authorization: \`Bearer \${process.env.ACCESS_TOKEN}\` } }
})
const client = new Client({ name: 'my-agent', version: '1.0.0' })
await client.connect(transport)
console.log(await client.listTools())</code></pre>

<h2 id="tools">Tools</h2>
<p>${tools.length} tool${tools.length === 1 ? '' : 's'}: ${tools.map(t => `<a href="#tool-${escapeHtml(t.name)}"><code>${escapeHtml(t.name)}</code></a>`).join(', ')}.</p>
${tools.map(toolSection).join('\n')}
</main>
</body>
</html>
`
  }

  const securityHeaders = {
    'content-security-policy': DOCS_CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'public, max-age=300'
  }

  // Built on first request: tools register after the routes.
  fastify.get('/docs', async (_request, reply) => {
    page ??= render()
    return reply.headers(securityHeaders).type('text/html; charset=utf-8').send(page)
  })
  fastify.get('/docs/style.css', async (_request, reply) => {
    return reply.headers(securityHeaders).type('text/css; charset=utf-8').send(STYLE)
  })
}
