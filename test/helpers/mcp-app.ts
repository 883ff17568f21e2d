import Fastify, { type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import type { Test } from 'tap'
import { connect, createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { z } from 'zod'
import auth from '../../plugins/auth.js'
import mcp, { ToolError, type McpPluginOptions } from '../../plugins/mcp.js'
import gracefulClose from '../../plugins/graceful-close.js'
import { LocalIssuer } from './issuer.js'
import { MCP_HEADERS, RESOURCE, initializeBody } from './build-app.js'

/** What the test tools saw, so tests can assert on the tool side of an exchange. */
export interface ToolProbe {
  /** Resolves with the signal of the latest `wait_for_cancel` call once it has started. */
  started: Promise<AbortSignal>
  /** Resolves when a `wait_for_cancel` call sees its signal abort. */
  aborted: Promise<void>
  /** Lets a running `hold` call return. */
  release: () => void
  /** Resolves when a `hold` call has started. */
  holding: Promise<void>
  /** Resolves once `late_progress` has reported progress after returning. */
  lateProgressSent: Promise<void>
  /** What `cancel_then_look` saw when it finally read its signal: aborted or not. */
  looked: Promise<boolean>
}

export interface McpTestApp {
  app: FastifyInstance
  issuer: LocalIssuer
  /** A valid token (subject user_123). */
  token: string
  probe: ToolProbe
  logs: string[]
}

interface Deferred<T> { promise: Promise<T>, resolve: (value: T) => void }

function deferred<T> (): Deferred<T> {
  let resolve!: (value: T) => void
  const promise = new Promise<T>(_resolve => { resolve = _resolve })
  return { promise, resolve }
}

/**
 * A small Fastify app with plugins/auth (keys from a LocalIssuer, held in
 * memory) and plugins/mcp, plus tools that exercise the transport:
 * `echo`, `progress` (streams progress), `wait_for_cancel` (returns when its
 * signal aborts), `hold` (returns when the test releases it), `fail_tool`
 * and `crash` (a ToolError and an unexpected error).
 */
export async function buildMcpApp (t: Test, mcpOptions: McpPluginOptions = {}, opts: { issuer?: LocalIssuer, tools?: (app: FastifyInstance) => void } = {}): Promise<McpTestApp> {
  const issuer = opts.issuer ?? await LocalIssuer.start()
  issuer.audience = [RESOURCE]
  const logs: string[] = []
  const app = Fastify({ logger: { level: 'debug', stream: { write: (line: string) => { logs.push(line) } } }, return503OnClosing: true })
  // As in app.ts: shutdown does not wait out keep-alive connections.
  await app.register(gracefulClose)
  if (mcpOptions.auth !== false) {
    await app.register(auth, {
      issuers: [issuer.url],
      audiences: [RESOURCE],
      jwks: { keys: issuer.keys.map(k => k.publicJwk) },
      resourceMetadataUrl: 'http://localhost:10000/.well-known/oauth-protected-resource/mcp'
    })
  }
  // A hook failing the way a bug would: the transport's error handler must answer without leaking it.
  app.addHook('preHandler', async request => {
    const fault = request.headers['x-test-fault']
    if (fault === 'crash') throw new Error('boom at /secret/path.ts:1:1')
    if (fault === 'teapot') throw Object.assign(new Error('short and stout'), { statusCode: 418 })
    if (fault === 'busy') throw Object.assign(new Error('Rate limit exceeded, retry in 1 minute'), { statusCode: 429 })
  })
  await app.register(mcp, mcpOptions)

  const started = deferred<AbortSignal>()
  const aborted = deferred<void>()
  const holding = deferred<void>()
  const released = deferred<void>()
  const looked = deferred<boolean>()
  app.mcpTool({
    name: 'echo',
    description: 'Returns its text',
    inputSchema: z.object({ text: z.string() }),
    outputSchema: z.object({ text: z.string() })
  }, ({ text }) => ({ content: [{ type: 'text', text }], structuredContent: { text } }))
  app.mcpTool({
    name: 'progress',
    description: 'Reports progress three times, then returns',
    inputSchema: z.object({ steps: z.number().int().default(3) })
  }, async ({ steps }, ctx) => {
    for (let i = 1; i <= steps; i++) {
      if (i < steps) ctx.sendProgress(i)
      else ctx.sendProgress(i, steps, 'done')
      await new Promise(resolve => setImmediate(resolve))
    }
    return { content: [{ type: 'text', text: `${steps} steps` }] }
  })
  app.mcpTool({
    name: 'wait_for_cancel',
    description: 'Returns once its request is cancelled',
    inputSchema: z.object({})
  }, async (_args, ctx) => {
    started.resolve(ctx.signal)
    ctx.sendProgress(0)
    await new Promise<void>(resolve => ctx.signal.addEventListener('abort', () => resolve(), { once: true }))
    ctx.sendProgress(1)
    aborted.resolve()
    return { content: [{ type: 'text', text: 'cancelled' }], isError: true }
  })
  app.mcpTool({
    name: 'cancel_then_look',
    description: 'Waits for the test, and only then looks at its signal',
    inputSchema: z.object({})
  }, async (_args, ctx) => {
    holding.resolve()
    await released.promise
    looked.resolve(ctx.signal.aborted)
    return { content: [{ type: 'text', text: `signal aborted: ${String(ctx.signal.aborted)}` }] }
  })
  app.mcpTool({
    name: 'hold',
    description: 'Returns when the test lets it, whatever its signal says',
    inputSchema: z.object({})
  }, async () => {
    holding.resolve()
    await released.promise
    return { content: [{ type: 'text', text: 'held and finished' }] }
  })
  app.mcpTool({
    name: 'report_then_hold',
    description: 'Reports progress (so the answer streams), then returns when the test lets it',
    inputSchema: z.object({})
  }, async (_args, ctx) => {
    ctx.sendProgress(1)
    holding.resolve()
    await released.promise
    // Progress after the client may have lost the stream: it is kept for a resume.
    ctx.sendProgress(2)
    return { content: [{ type: 'text', text: `finished; cancelled: ${String(ctx.signal.aborted)}` }] }
  })
  const lateProgress = deferred<void>()
  app.mcpTool({
    name: 'late_progress',
    description: 'Returns at once and reports progress afterwards, from work it left running',
    inputSchema: z.object({})
  }, (_args, ctx) => {
    setImmediate(() => { ctx.sendProgress(1); lateProgress.resolve() })
    return { content: [{ type: 'text', text: 'returned early' }] }
  })
  app.mcpTool({
    name: 'fail_tool',
    description: 'Fails with a message for the model',
    inputSchema: z.object({})
  }, () => { throw new ToolError('the upstream said no') })
  app.mcpTool({
    name: 'crash',
    description: 'Fails unexpectedly',
    inputSchema: z.object({})
  }, () => { throw new Error('secret internals at /srv/app/x.ts:10') })

  opts.tools?.(app)

  t.teardown(async () => {
    released.resolve()
    await app.close()
    if (opts.issuer === undefined) await issuer.close()
  })
  await app.ready()
  return {
    app,
    issuer,
    token: await issuer.token(),
    logs,
    probe: {
      started: started.promise,
      aborted: aborted.promise,
      holding: holding.promise,
      release: () => released.resolve(),
      lateProgressSent: lateProgress.promise,
      looked: looked.promise
    }
  }
}

/** The headers of a POST to /mcp: JSON in, JSON or SSE out, with a bearer token and the session's headers when given. */
export function mcpHeaders (token: string | undefined, session?: string, protocolVersion?: string): Record<string, string> {
  return {
    ...MCP_HEADERS,
    ...(token !== undefined && { authorization: `Bearer ${token}` }),
    ...(session !== undefined && { 'mcp-session-id': session }),
    ...(protocolVersion !== undefined && { 'mcp-protocol-version': protocolVersion })
  }
}

/** POSTs one message (or a raw string) to /mcp over inject. */
export async function postMcp (app: FastifyInstance, payload: unknown, headers: Record<string, string>): Promise<LightMyRequestResponse> {
  return await app.inject({
    method: 'POST',
    url: '/mcp',
    headers,
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload)
  })
}

/** Opens a session on any app serving /mcp over inject; returns its id. */
export async function initSession (app: FastifyInstance, token: string | undefined, protocolVersion = '2025-06-18'): Promise<string> {
  const res = await postMcp(app, initializeBody(protocolVersion), mcpHeaders(token))
  const id = res.headers['mcp-session-id']
  if (typeof id !== 'string') throw new Error(`initialize failed: ${res.statusCode} ${res.body}`)
  return id
}

export function toolCall (name: string, args: unknown, id: number | string = 2, meta?: Record<string, unknown>): Record<string, unknown> {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, ...(meta !== undefined && { _meta: meta }) } }
}

/** The JSON-RPC messages of an SSE body (`event: message` / `data:` lines). */
export function sseMessages (body: string): Array<Record<string, unknown>> {
  return body.split('\n\n')
    .map(event => event.split('\n').filter(line => line.startsWith('data: ')).map(line => line.slice(6)).join('\n'))
    .filter(data => data !== '')
    .map(data => JSON.parse(data) as Record<string, unknown>)
}

/** Listens on 127.0.0.1 (port 0) and returns the base URL. */
export async function listenLocal (app: FastifyInstance): Promise<string> {
  await app.listen({ port: 0, host: '127.0.0.1' })
  return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
}

/** Sends raw bytes over a socket and returns everything the server answers until it closes (or `ms` passes). */
export async function rawHttp (baseUrl: string, request: string | Buffer, ms = 2000): Promise<string> {
  const { hostname, port } = new URL(baseUrl)
  return await new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname)
    const chunks: Buffer[] = []
    const timer = setTimeout(() => socket.destroy(), ms)
    socket.on('data', chunk => chunks.push(chunk))
    socket.on('error', reject)
    socket.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('latin1')) })
    socket.end(request)
  })
}

/** The status code of a raw HTTP/1.1 answer. */
export function rawStatus (answer: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)
}

/** True when a body looks like it leaks a stack trace or a source path. */
export function leaksInternals (body: string): boolean {
  return /\n\s+at |\bat [\w.<>]+ \(|\/[\w/-]+\.(ts|js):\d+|node:internal/.test(body)
}

/** Reads a response body to its end; rejects if the stream breaks off instead of ending cleanly. */
export async function readToEnd (reader: ReadableStreamDefaultReader<Uint8Array>): Promise<string> {
  const decoder = new TextDecoder()
  let text = ''
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return text + decoder.decode()
    text += decoder.decode(value, { stream: true })
  }
}

/** A port free on 127.0.0.1 right now, for an app whose URL must be known before it is built. */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise(resolve => server.close(resolve))
  return port
}
