import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { ToolRegistry, type ObjectSchema, type ToolDefinition, type ToolHandler } from '../lib/mcp/tools.js'
import {
  McpProtocol, PROTOCOL_VERSIONS, DEFAULT_HTTP_PROTOCOL_VERSION, RpcError, RpcFailure, classify, rpcError,
  type JsonRpcNotification, type JsonRpcRequest, type JsonRpcResponse, type DispatchScope, type ServerInfo
} from '../lib/mcp/protocol.js'
import { slashVariants } from '../lib/http/route-paths.js'
import { isLoopbackOrigin } from '../lib/http/loopback-origin.js'
import { SessionStore, SessionLimitError, type McpSession } from '../lib/mcp/session-store.js'

export { ToolError } from '../lib/mcp/tools.js'
export type { ToolDefinition, ToolHandler, ToolContext, ToolResult, ObjectSchema, JsonObjectSchema, ZodObjectSchema, SchemaValue } from '../lib/mcp/tools.js'

export interface McpPluginOptions {
  /**
   * Where the Streamable HTTP endpoint lives (`/mcp/` is served too).
   * @default '/mcp'
   * @error mcp: "path" must start with /
   */
  path?: string
  /**
   * The server's name and version in the initialize result.
   * @default { name: 'mcp-server', version: '0.0.0' }
   */
  serverInfo?: ServerInfo
  /** Instructions for the model, in the initialize result. */
  instructions?: string
  /**
   * Origins allowed to call the endpoint (MCP transports "Security Warning":
   * validate Origin against DNS rebinding). Empty: loopback origins only.
   * `*` allows every origin.
   * @default []
   */
  allowedOrigins?: string[]
  /**
   * A session unused this long ends.
   * @default 900000
   * @error mcp: "sessionIdleTtlMs" must be a positive integer
   */
  sessionIdleTtlMs?: number
  /**
   * Sessions open at once; past it, initialize answers 503.
   * @default 20000
   * @error mcp: "maxSessions" must be a positive integer
   */
  maxSessions?: number
  /**
   * Sessions of one token subject; past it, its least recently used one ends.
   * @default 100
   * @error mcp: "maxSessionsPerSubject" must be a positive integer
   */
  maxSessionsPerSubject?: number
  /**
   * No sessions: every POST stands alone; GET and DELETE answer 405.
   * @default false
   */
  stateless?: boolean
  /**
   * Largest request body in bytes (413 beyond).
   * @default 1048576
   * @error mcp: "bodyLimit" must be a positive integer
   */
  bodyLimit?: number
  /**
   * Require `fastify.authenticate` (the mcp-auth plugin) on the endpoint.
   * @default true
   * @error mcp: register the mcp-auth plugin first, or pass auth: false
   */
  auth?: boolean
  /**
   * Interval between SSE keep-alive comments on idle streams.
   * @default 25000
   * @error mcp: "keepAliveMs" must be a positive integer
   */
  keepAliveMs?: number
  /**
   * Which tools tools/list shows a caller: `all`, or only those whose scopes
   * its token carries (`permitted`). Calls are checked either way.
   * @default 'all'
   * @error mcp: "listTools" must be "all" or "permitted"
   */
  listTools?: 'all' | 'permitted'
}

const defaults = {
  path: '/mcp',
  serverInfo: { name: 'mcp-server', version: '0.0.0' },
  allowedOrigins: [] as string[],
  sessionIdleTtlMs: 15 * 60_000,
  maxSessions: 20_000,
  maxSessionsPerSubject: 100,
  stateless: false,
  bodyLimit: 1024 * 1024,
  auth: true,
  keepAliveMs: 25_000,
  listTools: 'all'
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Registers an MCP tool, shared by every session. Call it from any plugin registered after `mcp`. */
    mcpTool: <I extends ObjectSchema, O extends ObjectSchema = ObjectSchema>(definition: ToolDefinition<I, O>, handler: ToolHandler<I, O>) => void
    mcpSessions: SessionStore
  }
}

const ANONYMOUS = 'anonymous'
const NEVER_ABORTED = new AbortController().signal
const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no'
}

function accepts (accept: string | undefined, type: string, family: string): boolean {
  // RFC 9110 §12.5.1: no Accept header means any type is acceptable.
  if (accept === undefined) return true
  return accept.includes(type) || accept.includes(family) || accept.includes('*/*')
}

function sseEvent (message: JsonRpcResponse | JsonRpcNotification): string {
  return `event: message\ndata: ${JSON.stringify(message)}\n\n`
}

/**
 * One running tools/call. AbortController is among the costlier objects of a
 * request, so its signal is made only when the tool asks for it; a cancel, a
 * disconnect or the session's end before that still counts.
 */
class RunningCall {
  #controller: AbortController | undefined
  #aborted = false
  #onClose: (() => void) | undefined

  constructor (readonly res: ServerResponse) {}

  /** Cancelled, or the client went away before its answer. */
  get aborted (): boolean {
    return this.#aborted || (this.res.destroyed && !this.res.writableEnded)
  }

  get signal (): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.aborted) {
        this.#controller.abort()
      } else {
        this.#onClose = () => { if (!this.res.writableEnded) this.abort() }
        this.res.once('close', this.#onClose)
      }
    }
    return this.#controller.signal
  }

  abort (): void {
    this.#aborted = true
    this.#controller?.abort()
  }

  done (): void {
    if (this.#onClose !== undefined) this.res.removeListener('close', this.#onClose)
  }
}

function validateOptions (opts: McpPluginOptions): void {
  const fail = (what: string): never => { throw new Error(`mcp: ${what}`) }
  if (opts.path !== undefined && !opts.path.startsWith('/')) fail('"path" must start with /')
  if (opts.listTools !== undefined && opts.listTools !== 'all' && opts.listTools !== 'permitted') fail('"listTools" must be "all" or "permitted"')
  for (const key of ['sessionIdleTtlMs', 'maxSessions', 'maxSessionsPerSubject', 'bodyLimit', 'keepAliveMs'] as const) {
    const value = opts[key]
    if (value !== undefined && (!Number.isInteger(value) || value <= 0)) fail(`"${key}" must be a positive integer`)
  }
}

async function mcpPlugin (fastify: FastifyInstance, options: McpPluginOptions): Promise<void> {
  validateOptions(options)
  const opts = { ...defaults, ...options }
  if (opts.auth && !fastify.hasDecorator('authenticate')) {
    throw new Error('mcp: register the mcp-auth plugin first, or pass auth: false')
  }

  const registry = new ToolRegistry()
  const protocol = new McpProtocol({ registry, serverInfo: opts.serverInfo, instructions: opts.instructions, listPermittedOnly: opts.listTools === 'permitted' })
  /** Scopes the endpoint itself requires (the mcp-auth plugin's): a tool's challenge names them with its own. */
  const endpointScopes: readonly string[] = opts.auth ? fastify.requiredScopes : []
  /** Whether some tool needs scopes of its own (only with auth): until one does, calls skip the check. */
  let scopedTools = false
  /** Every open SSE response (standalone GET streams and streaming POST answers), for keep-alive and shutdown. */
  const openStreams = new Set<ServerResponse>()
  const sessions = new SessionStore({
    idleTtlMs: opts.sessionIdleTtlMs,
    maxSessions: opts.maxSessions,
    maxSessionsPerSubject: opts.maxSessionsPerSubject,
    onEnd (session, reason) {
      session.stream?.end()
      fastify.log.debug({ session: session.id.slice(0, 8), subject: session.subject, reason }, 'MCP session ended')
    }
  })

  const allowAllOrigins = opts.allowedOrigins.includes('*')
  const allowedOrigins = new Set(opts.allowedOrigins)
  // A callback hook: no promise per request on the hot path.
  const checkOrigin: onRequestHookHandler = (request, reply, done) => {
    const origin = request.headers.origin
    if (origin === undefined || allowAllOrigins || allowedOrigins.has(origin)) return done()
    if (allowedOrigins.size === 0 && isLoopbackOrigin(origin)) return done()
    request.log.info({ origin }, 'MCP request refused: origin not allowed')
    reply.code(403).send(rpcError(null, RpcError.ServerError, `Forbidden: origin ${origin} is not allowed`))
  }

  function subjectOf (request: FastifyRequest): string {
    return request.auth?.subject ?? ANONYMOUS
  }

  function refuse (reply: FastifyReply, status: number, code: number, message: string): FastifyReply {
    return reply.code(status).send(rpcError(null, code, message))
  }

  /** MCP transports "Session Management": a missing id is a bad request, an unknown (or another subject's) one is 404. */
  function sessionFor (request: FastifyRequest, reply: FastifyReply): McpSession | undefined {
    const id = request.headers['mcp-session-id']
    if (typeof id !== 'string' || id === '') {
      refuse(reply, 400, RpcError.ServerError, 'Bad Request: Mcp-Session-Id header is required; send initialize first')
      return undefined
    }
    // Another subject's session answers exactly like an unknown one (no oracle
    // for valid ids), and its use does not keep that session alive.
    const session = sessions.get(id)
    if (session === undefined || session.subject !== subjectOf(request) || sessions.touch(id) === undefined) {
      refuse(reply, 404, RpcError.SessionNotFound, 'Session not found: it expired or was closed; initialize a new session')
      return undefined
    }
    return session
  }

  function checkProtocolVersion (request: FastifyRequest, reply: FastifyReply): string | undefined | false {
    const version = request.headers['mcp-protocol-version']
    if (version === undefined) return undefined
    // Node joins repeated headers into one string, so the value is a string here.
    if (PROTOCOL_VERSIONS.includes(version as string)) return version as string
    refuse(reply, 400, RpcError.ServerError, `Bad Request: unsupported MCP-Protocol-Version ${JSON.stringify(version)}; supported: ${PROTOCOL_VERSIONS.join(', ')}`)
    return false
  }

  function openSse (reply: FastifyReply): ServerResponse {
    // Hooks (CORS among them) set headers on the reply; a hijacked reply must carry them itself.
    const headers = reply.getHeaders()
    reply.hijack()
    const res = reply.raw
    res.writeHead(200, { ...headers, ...SSE_HEADERS } as OutgoingHttpHeaders)
    res.flushHeaders()
    openStreams.add(res)
    res.once('close', () => openStreams.delete(res))
    return res
  }

  /**
   * Results that are the same object again (the tools/list result, a tool
   * answer served from a cache) keep their JSON: only the envelope with the
   * request id is built per request. Results are treated as immutable.
   */
  const serializedResults = new WeakMap<object, string>()
  function sendResponse (reply: FastifyReply, response: JsonRpcResponse): FastifyReply {
    const result = response.result
    if (result === null || typeof result !== 'object') return reply.send(response)
    let json = serializedResults.get(result)
    if (json === undefined) {
      json = JSON.stringify(result)
      serializedResults.set(result, json)
    }
    return reply
      .header('content-type', 'application/json; charset=utf-8')
      .send(`{"jsonrpc":"2.0","id":${JSON.stringify(response.id)},"result":${json}}`)
  }

  /**
   * The scopes a tools/call needs when the caller's token lacks some, else
   * undefined. Checked here, at the HTTP level, so the refusal is a 403 the
   * client can step up from (MCP 2025-11-25 authorization "Scope Challenge
   * Handling"), not a JSON-RPC error it cannot act on.
   */
  function missingScopes (request: FastifyRequest, msg: JsonRpcRequest): readonly string[] | undefined {
    const name = msg.params?.name
    const tool = typeof name === 'string' ? registry.get(name) : undefined
    if (tool === undefined || tool.scopes.length === 0) return undefined
    const granted = (request.auth as NonNullable<FastifyRequest['auth']>).scopes
    for (const scope of tool.scopes) {
      // Existing and new scopes together, so the stepped-up token still serves every other call.
      if (!granted.includes(scope)) return [...new Set([...endpointScopes, ...tool.scopes])]
    }
    return undefined
  }

  async function answer (request: FastifyRequest, reply: FastifyReply, msg: JsonRpcRequest, session: McpSession | undefined, protocolVersion: string): Promise<void> {
    const scope: DispatchScope = {
      auth: request.auth,
      sessionId: session?.id,
      protocolVersion,
      log: request.log,
      signal: NEVER_ABORTED,
      notify: undefined
    }
    if (msg.method !== 'tools/call') {
      await sendResponse(reply, await protocol.handle(msg, scope))
      return
    }

    const needed = scopedTools ? missingScopes(request, msg) : undefined
    if (needed !== undefined) {
      fastify.refuseInsufficientScope(request, reply, needed)
      return
    }

    // A tool call can run long: it gets a signal (client cancel, disconnect,
    // session end) and may stream progress, switching the answer to SSE.
    const call = new RunningCall(reply.raw)
    if (session !== undefined) (session.inflight ??= new Map()).set(msg.id, call)
    // post() has checked that the client accepts SSE.
    let stream: ServerResponse | undefined
    // A tool may report progress from work it left running after it returned:
    // once the answer is on its way, that progress has nowhere to go.
    let answered = false
    const callScope: DispatchScope = {
      auth: scope.auth,
      sessionId: scope.sessionId,
      protocolVersion,
      log: scope.log,
      // Made only if the tool asks for it: most calls (cache hits) never do.
      get signal () { return call.signal },
      notify (notification) {
        if (answered || call.aborted) return
        stream ??= openSse(reply)
        stream.write(sseEvent(notification))
      }
    }
    try {
      const response = await protocol.handle(msg, callScope)
      answered = true
      if (stream === undefined) {
        await sendResponse(reply, response)
      } else {
        stream.end(sseEvent(response))
      }
    } finally {
      // A client reusing an id while the first call runs must not unregister the other call.
      if (session?.inflight?.get(msg.id) === call) session.inflight.delete(msg.id)
      call.done()
    }
  }

  function notificationFrom (msg: JsonRpcNotification, session: McpSession | undefined): void {
    // MCP cancellation: abort the named request of this session, if still running.
    if (msg.method === 'notifications/cancelled' && session?.inflight !== undefined) {
      const requestId = msg.params?.requestId
      if (typeof requestId === 'string' || typeof requestId === 'number') session.inflight.get(requestId)?.abort()
    }
  }

  async function initialize (request: FastifyRequest, reply: FastifyReply, msg: JsonRpcRequest): Promise<void> {
    let init: ReturnType<McpProtocol['initialize']>
    try {
      init = protocol.initialize(msg.params)
    } catch (err) {
      await reply.send(rpcError(msg.id, (err as RpcFailure).code, (err as RpcFailure).message))
      return
    }
    if (!opts.stateless) {
      let session: McpSession
      try {
        session = sessions.create(subjectOf(request), init.protocolVersion, init.clientInfo)
      } catch (err) {
        /* c8 ignore next -- create() throws nothing else */
        if (!(err instanceof SessionLimitError)) throw err
        reply.header('retry-after', '60')
        refuse(reply, 503, RpcError.ServerError, `Service Unavailable: ${err.message}`)
        return
      }
      reply.header('mcp-session-id', session.id)
      request.log.info({ session: session.id.slice(0, 8), subject: session.subject, protocolVersion: init.protocolVersion, client: init.clientInfo?.name }, 'MCP session opened')
    }
    await reply.send({ jsonrpc: '2.0', id: msg.id, result: init.result })
  }

  async function batch (request: FastifyRequest, reply: FastifyReply, body: unknown[], session: McpSession | undefined, protocolVersion: string): Promise<void> {
    // JSON-RPC batching existed in 2025-03-26 only; 2025-06-18 removed it (changelog item 1).
    if (protocolVersion >= '2025-06-18') {
      refuse(reply, 400, RpcError.InvalidRequest, `Invalid Request: JSON-RPC batches are not supported in protocol version ${protocolVersion}`)
      return
    }
    if (body.length === 0) {
      refuse(reply, 400, RpcError.InvalidRequest, 'Invalid Request: empty batch')
      return
    }
    if (scopedTools) {
      for (const msg of body) {
        const needed = classify(msg) === 'request' && (msg as JsonRpcRequest).method === 'tools/call' ? missingScopes(request, msg as JsonRpcRequest) : undefined
        if (needed !== undefined) {
          fastify.refuseInsufficientScope(request, reply, needed)
          return
        }
      }
    }
    const scope: DispatchScope = { auth: request.auth, sessionId: session?.id, protocolVersion, log: request.log, signal: NEVER_ABORTED, notify: undefined }
    const pending: Array<Promise<JsonRpcResponse>> = []
    for (const msg of body) {
      const kind = classify(msg)
      if (kind === 'request') {
        pending.push(protocol.handle(msg as JsonRpcRequest, scope))
      } else if (kind === 'notification') {
        notificationFrom(msg as JsonRpcNotification, session)
      } else if (kind === 'invalid') {
        pending.push(Promise.resolve(rpcError(null, RpcError.InvalidRequest, 'Invalid Request: not a JSON-RPC 2.0 message')))
      }
    }
    if (pending.length === 0) {
      await reply.code(202).send()
      return
    }
    await reply.send(await Promise.all(pending))
  }

  async function post (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const headerVersion = checkProtocolVersion(request, reply)
    if (headerVersion === false) return
    // MCP transports "Sending Messages to the Server": the client accepts both JSON and SSE.
    const accept = request.headers.accept
    if (!accepts(accept, 'application/json', 'application/*') || !accepts(accept, 'text/event-stream', 'text/*')) {
      refuse(reply, 406, RpcError.ServerError, 'Not Acceptable: Accept must list both application/json and text/event-stream')
      return
    }
    const body = request.body
    const kind = Array.isArray(body) ? 'batch' : classify(body)
    if (kind === 'invalid') {
      const id = (body as { id?: unknown } | null)?.id
      refuse(reply, 400, RpcError.InvalidRequest, 'Invalid Request: the body must be a JSON-RPC 2.0 request, notification or response')
      if (typeof id === 'string' || typeof id === 'number') request.log.debug({ id }, 'invalid JSON-RPC message')
      return
    }
    if (kind === 'request' && (body as JsonRpcRequest).method === 'initialize') {
      await initialize(request, reply, body as JsonRpcRequest)
      return
    }

    let session: McpSession | undefined
    if (!opts.stateless) {
      session = sessionFor(request, reply)
      if (session === undefined) return
    }
    const protocolVersion = session?.protocolVersion ?? headerVersion ?? DEFAULT_HTTP_PROTOCOL_VERSION

    switch (kind) {
      case 'batch':
        return await batch(request, reply, body as unknown[], session, protocolVersion)
      case 'request':
        return await answer(request, reply, body as JsonRpcRequest, session, protocolVersion)
      case 'notification':
        notificationFrom(body as JsonRpcNotification, session)
        await reply.code(202).send()
        return
      default:
        // A response: this server sends no requests, so there is nothing to match it to.
        await reply.code(202).send()
    }
  }

  /** MCP transports "Listening for Messages from the Server": one standalone SSE stream per session. */
  async function get (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (checkProtocolVersion(request, reply) === false) return
    if (!accepts(request.headers.accept, 'text/event-stream', 'text/*')) {
      refuse(reply, 406, RpcError.ServerError, 'Not Acceptable: Accept must list text/event-stream')
      return
    }
    const session = sessionFor(request, reply)
    if (session === undefined) return
    if (session.stream !== undefined) {
      refuse(reply, 409, RpcError.ServerError, 'Conflict: this session already has an open stream')
      return
    }
    const stream = openSse(reply)
    session.stream = stream
    // No second stream opens while this one is open (409 above), so this one is the session's.
    stream.once('close', () => {
      session.stream = undefined
      session.lastSeen = Date.now()
    })
  }

  /** MCP transports "Session Management": DELETE ends the session. */
  async function del (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (checkProtocolVersion(request, reply) === false) return
    const session = sessionFor(request, reply)
    if (session === undefined) return
    sessions.end(session.id, 'deleted')
    await reply.code(200).send()
  }

  async function methodNotAllowed (_request: FastifyRequest, reply: FastifyReply): Promise<void> {
    reply.header('allow', 'POST')
    refuse(reply, 405, RpcError.ServerError, 'Method Not Allowed: this server runs stateless; only POST is served')
  }

  // SSE comments keep idle streams alive through proxies; one timer for all streams.
  const keepAlive = setInterval(() => { for (const res of openStreams) res.write(': keep-alive\n\n') }, opts.keepAliveMs)
  keepAlive.unref()

  // Shutdown: standalone streams would hold the server open forever; end them
  // so in-flight requests can finish and the process exits.
  fastify.addHook('preClose', async () => {
    clearInterval(keepAlive)
    for (const session of sessions.values()) session.stream?.end()
  })
  fastify.addHook('onClose', async () => { sessions.close() })

  fastify.decorate('mcpSessions', sessions)
  fastify.decorate('mcpTool', function mcpTool (definition, handler) {
    if (!opts.auth && Array.isArray(definition?.scopes) && definition.scopes.length > 0) {
      throw new Error(`mcp: tool "${definition.name}" declares scopes, but the endpoint runs without auth (auth: false)`)
    }
    registry.register(definition, handler)
    for (const scope of registry.get(definition.name)?.scopes ?? []) {
      fastify.scopesInUse.add(scope)
      scopedTools = true
    }
  } as FastifyInstance['mcpTool'])

  const onRequest = opts.auth ? [checkOrigin, fastify.authenticate] : [checkOrigin]
  const paths = slashVariants(fastify, [opts.path])

  await fastify.register(async function mcpTransport (transport) {
    // Only JSON bodies: everything else is 415 (MCP messages are UTF-8 JSON).
    transport.removeAllContentTypeParsers()
    const parseJson = transport.getDefaultJsonParser('error', 'ignore')
    transport.addContentTypeParser('application/json', { parseAs: 'string', bodyLimit: opts.bodyLimit }, function mcpJson (request, body, done) {
      // DELETE carries no message; clients that set Content-Type on every
      // request (the SDK with `requestInit.headers`) must still end their session.
      if (request.method === 'DELETE' && body === '') return done(null, undefined)
      parseJson(request, body as string, done)
    })

    transport.setErrorHandler(function mcpErrors (error: FastifyError, request, reply) {
      const status = error.statusCode ?? 500
      if (status >= 500) {
        request.log.error({ err: error }, 'MCP transport error')
        return refuse(reply, 500, RpcError.InternalError, 'Internal error')
      }
      switch (error.code) {
        case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
          return refuse(reply, 415, RpcError.ServerError, 'Unsupported Media Type: Content-Type must be application/json')
        case 'FST_ERR_CTP_BODY_TOO_LARGE':
          return refuse(reply, 413, RpcError.ServerError, `Payload Too Large: the body exceeds ${opts.bodyLimit} bytes`)
        case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        case 'FST_ERR_CTP_INVALID_JSON_BODY':
          return refuse(reply, 400, RpcError.ParseError, 'Parse error: the body is not valid JSON')
      }
      // Errors raised by hooks (the rate limiter's 429 among them) keep their status; their message already says what to do.
      if (status === 429) return refuse(reply, 429, RpcError.ServerError, error.message)
      return refuse(reply, status, RpcError.InvalidRequest, `Bad Request: ${error.message}`)
    })

    for (const url of paths) {
      transport.post(url, { onRequest, bodyLimit: opts.bodyLimit }, post)
      if (opts.stateless) {
        transport.route({ method: ['GET', 'DELETE'], url, onRequest, handler: methodNotAllowed })
      } else {
        // No automatic HEAD route: a HEAD would run get() and hold the
        // session's one stream open with nothing to carry it.
        transport.get(url, { onRequest, exposeHeadRoute: false }, get)
        transport.delete(url, { onRequest }, del)
      }
    }
  })
}

export default fp(mcpPlugin, { name: 'mcp', fastify: '5.x' })
