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
import {
  MemorySessionStore, SessionLimitError, SessionStoreUnavailableError, sessionOwner,
  type McpSession, type SessionStore, type SessionStoreOptions
} from '../lib/mcp/session-store.js'
import { RedisSessionStore, type RedisLink } from '../lib/mcp/redis-session-store.js'
import { MemoryEventStore, eventId, newStreamId, parseEventId, type EventStore } from '../lib/mcp/event-store.js'
import { RedisEventStore } from '../lib/mcp/redis-event-store.js'

export { ToolError } from '../lib/mcp/tools.js'
export type { ToolDefinition, ToolHandler, ToolContext, ObjectSchema } from '../lib/mcp/tools.js'

export interface McpPluginOptions {
  /** Where the Streamable HTTP endpoint lives (default `/mcp`; `/mcp/` is served too). */
  path?: string
  serverInfo?: ServerInfo
  instructions?: string
  /**
   * Origins allowed to call the endpoint (MCP transports "Security Warning":
   * validate Origin against DNS rebinding). Empty: loopback origins only.
   * `*` allows every origin.
   */
  allowedOrigins?: string[]
  sessionIdleTtlMs?: number
  maxSessions?: number
  maxSessionsPerSubject?: number
  /** No sessions: every POST stands alone; GET and DELETE answer 405. */
  stateless?: boolean
  bodyLimit?: number
  /** Require `fastify.authenticate` (the mcp-auth plugin) on the endpoint (default true). */
  auth?: boolean
  /** Interval between SSE keep-alive comments on idle streams. */
  keepAliveMs?: number
  /**
   * Shared state for several replicas: sessions (and stream events) live in
   * this Redis, so that any replica answers any session. Without it, in memory.
   */
  redis?: RedisLink
  /**
   * A client whose SSE answer was cut off has this long to resume it (GET
   * with Last-Event-ID, on any replica) before its call is cancelled: a
   * disconnection is not a cancellation (transports "Resumability and Redelivery").
   */
  resumeGraceMs?: number
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
  resumeGraceMs: 2000
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Registers an MCP tool, shared by every session. Call it from any plugin registered after `mcp`. */
    mcpTool: <I extends ObjectSchema, O extends ObjectSchema = ObjectSchema>(definition: ToolDefinition<I, O>, handler: ToolHandler<I, O>) => void
    mcpSessions: SessionStore
  }
}

const ANONYMOUS = 'anonymous'
/* c8 ignore next -- for promises that settle without rejecting: there is nothing to do */
const ignore = (): void => {}
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

function sseEventWithId (id: string, data: string): string {
  return `id: ${id}\nevent: message\ndata: ${data}\n\n`
}

/** An id and no data: the client learns where to resume from before anything else comes (2025-11-25 transports). */
function primingEvent (streamId: string): string {
  return `id: ${eventId(streamId, 0)}\ndata: \n\n`
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
  /** The answer streams with event ids: a disconnect leaves the client a chance to resume. */
  resumable = false

  constructor (readonly res: ServerResponse) {}

  /** Cancelled, or the client went away before its answer (and cannot resume it). */
  get aborted (): boolean {
    return this.#aborted || (!this.resumable && this.res.destroyed && !this.res.writableEnded)
  }

  get signal (): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      if (this.aborted) {
        this.#controller.abort()
      } else {
        this.#onClose = () => { if (!this.res.writableEnded && !this.resumable) this.abort() }
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
  for (const key of ['sessionIdleTtlMs', 'maxSessions', 'maxSessionsPerSubject', 'bodyLimit', 'keepAliveMs', 'resumeGraceMs'] as const) {
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
  const protocol = new McpProtocol({ registry, serverInfo: opts.serverInfo, instructions: opts.instructions })
  /** Every open SSE response (standalone GET streams and streaming POST answers), for keep-alive and shutdown. */
  const openStreams = new Set<ServerResponse>()
  const storeOptions: SessionStoreOptions = {
    idleTtlMs: opts.sessionIdleTtlMs,
    maxSessions: opts.maxSessions,
    maxSessionsPerSubject: opts.maxSessionsPerSubject,
    onEnd (session, reason) {
      session.stream?.end()
      events.endSession(session.id)
      fastify.log.debug({ session: session.id.slice(0, 8), subject: session.subject, reason }, 'MCP session ended')
    }
  }
  const events: EventStore = opts.redis !== undefined
    ? new RedisEventStore(opts.redis, {
      ttlMs: opts.sessionIdleTtlMs,
      /* c8 ignore next -- Redis failing between the session check and the write (timing); the store's tests cover its error path */
      onError: (err) => fastify.log.warn({ err: { message: err.message } }, 'MCP event store write failed')
    })
    : new MemoryEventStore()
  /** Streams resumed with Last-Event-ID, ended at shutdown like the standalone ones. */
  const resumedStreams = new Set<ServerResponse>()
  const sessions: SessionStore = opts.redis !== undefined
    ? new RedisSessionStore(opts.redis, storeOptions)
    : new MemorySessionStore(storeOptions)

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

  /**
   * A session belongs to the principal and the client its token was issued
   * to: the same user through another client neither uses nor evicts it, and
   * the per-subject cap counts per (principal, client) pair.
   */
  function subjectOf (request: FastifyRequest): string {
    // Without the auth plugin (auth: false) the request has no auth at all.
    const auth = request.auth as FastifyRequest['auth'] | undefined
    return auth == null ? ANONYMOUS : sessionOwner(auth.principal, auth.clientId)
  }

  function refuse (reply: FastifyReply, status: number, code: number, message: string): FastifyReply {
    return reply.code(status).send(rpcError(null, code, message))
  }

  /**
   * MCP transports "Session Management": a missing id is a bad request, an
   * unknown (or another owner's) one is 404. Synchronous when the store knows
   * the answer locally; a promise when it asks Redis.
   */
  function sessionFor (request: FastifyRequest, reply: FastifyReply): McpSession | undefined | Promise<McpSession | undefined> {
    const id = request.headers['mcp-session-id']
    if (typeof id !== 'string' || id === '') {
      refuse(reply, 400, RpcError.ServerError, 'Bad Request: Mcp-Session-Id header is required; send initialize first')
      return undefined
    }
    // Another owner's session answers exactly like an unknown one (no oracle
    // for valid ids), and its use does not keep that session alive.
    const found = sessions.use(id, subjectOf(request))
    if (found instanceof Promise) return found.then(session => found404(reply, session), err => storeUnavailable(reply, err))
    return found404(reply, found)
  }

  function found404 (reply: FastifyReply, session: McpSession | undefined): McpSession | undefined {
    if (session === undefined) refuse(reply, 404, RpcError.SessionNotFound, 'Session not found: it expired or was closed; initialize a new session')
    return session
  }

  /** The shared store could not answer: neither "no such session" (404) nor an auth verdict, but 503 (RFC 9110 §15.6.4). */
  function storeUnavailable (reply: FastifyReply, err: unknown): undefined {
    /* c8 ignore next -- the stores reject with nothing else */
    if (!(err instanceof SessionStoreUnavailableError)) throw err
    reply.log.warn({ err: { message: err.message, cause: (err.cause as Error | undefined)?.message } }, 'MCP session store unavailable')
    reply.header('retry-after', String(err.retryAfterSec))
    refuse(reply, 503, RpcError.ServerError, `Service Unavailable: ${err.message}`)
    return undefined
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

    // A tool call can run long: it gets a signal (client cancel, disconnect,
    // session end) and may stream progress, switching the answer to SSE.
    const call = new RunningCall(reply.raw)
    if (session !== undefined) (session.inflight ??= new Map()).set(msg.id, call)
    // post() has checked that the client accepts SSE.
    let stream: ServerResponse | undefined
    // In a session the streamed answer is resumable: every event has an id and is stored.
    let streamId: string | undefined
    let seq = 0
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
        if (stream === undefined) {
          stream = openSse(reply)
          if (session !== undefined) {
            streamId = newStreamId()
            call.resumable = true
            stream.write(primingEvent(streamId))
            stream.once('close', () => { if (!answered) graceBeforeCancel(session, streamId as string, call) })
          }
        }
        if (streamId === undefined) {
          stream.write(sseEvent(notification))
          return
        }
        const data = JSON.stringify(notification)
        events.append((session as McpSession).id, streamId, { seq: ++seq, data, final: false })
        if (!stream.destroyed) stream.write(sseEventWithId(eventId(streamId, seq), data))
      }
    }
    try {
      const response = await protocol.handle(msg, callScope)
      answered = true
      if (stream === undefined) {
        await sendResponse(reply, response)
      } else if (streamId === undefined) {
        stream.end(sseEvent(response))
      } else {
        const data = JSON.stringify(response)
        events.append((session as McpSession).id, streamId, { seq: ++seq, data, final: true })
        stream.end(sseEventWithId(eventId(streamId, seq), data))
      }
    } finally {
      // A client reusing an id while the first call runs must not unregister the other call.
      if (session?.inflight?.get(msg.id) === call) session.inflight.delete(msg.id)
      call.done()
    }
  }

  /** The client lost a resumable answer: cancel the call unless it resumes (anywhere) in time. */
  function graceBeforeCancel (session: McpSession, streamId: string, call: RunningCall): void {
    setTimeout(() => {
      resumedAnywhere(session.id, streamId).then(resumed => { if (!resumed) call.abort() }, ignore)
    }, opts.resumeGraceMs).unref()
  }

  async function resumedAnywhere (sessionId: string, streamId: string): Promise<boolean> {
    try {
      return await events.resumed(sessionId, streamId)
      /* c8 ignore next 4 -- Redis failing at the end of the grace (timing): nobody could resume, so cancel */
    } catch {
      return false
    }
  }

  /**
   * MCP transports "Resumability and Redelivery": GET with Last-Event-ID
   * replays the events of that one stream after that id, then follows the
   * stream until its last event (a POST answer's response), wherever it is
   * produced.
   */
  function resume (reply: FastifyReply, session: McpSession, lastEventId: string): void {
    const from = parseEventId(lastEventId)
    if (from === undefined) {
      refuse(reply, 400, RpcError.ServerError, 'Bad Request: Last-Event-ID is not an event id this server sent')
      return
    }
    const { streamId } = from
    const res = openSse(reply)
    resumedStreams.add(res)
    let last = from.seq
    // One replay at a time, in order: each sends what came after the last one sent,
    // so nothing is sent twice and nothing follows the final event.
    let chain = Promise.resolve()
    const replayOnce = async (): Promise<void> => {
      try {
        for (const event of await events.replay(session.id, streamId, last)) {
          /* c8 ignore next -- ended at shutdown while its stream still produced (timing) */
          if (res.writableEnded) return
          last = event.seq
          res.write(sseEventWithId(eventId(streamId, event.seq), event.data))
          if (event.final) res.end()
        }
      } catch {
        /* c8 ignore next 2 -- Redis failing mid-resume (timing): end the stream, the client resumes again from its last id */
        res.end()
      }
    }
    const pump = (): void => { chain = chain.then(replayOnce) }
    // Follow first, then replay: nothing appended in between is missed.
    const stop = events.follow(session.id, streamId, pump)
    res.once('close', () => {
      stop()
      resumedStreams.delete(res)
    })
    pump()
  }

  function notificationFrom (msg: JsonRpcNotification, session: McpSession | undefined): void {
    // MCP cancellation: abort the named request of this session, if still running.
    // The call may run on another replica: the store passes the cancel on.
    if (msg.method === 'notifications/cancelled' && session !== undefined) {
      const requestId = msg.params?.requestId
      if (typeof requestId === 'string' || typeof requestId === 'number') sessions.cancel(session.id, requestId)
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
        const created = sessions.create(subjectOf(request), init.protocolVersion, init.clientInfo)
        session = created instanceof Promise ? await created : created
      } catch (err) {
        if (err instanceof SessionStoreUnavailableError) {
          storeUnavailable(reply, err)
          return
        }
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
      const found = sessionFor(request, reply)
      session = found instanceof Promise ? await found : found
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
    const found = sessionFor(request, reply)
    const session = found instanceof Promise ? await found : found
    if (session === undefined) return
    const lastEventId = request.headers['last-event-id']
    if (typeof lastEventId === 'string') {
      resume(reply, session, lastEventId)
      return
    }
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
    const found = sessionFor(request, reply)
    const session = found instanceof Promise ? await found : found
    if (session === undefined) return
    try {
      await sessions.end(session.id, 'deleted')
    } catch (err) {
      storeUnavailable(reply, err)
      return
    }
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
    for (const res of resumedStreams) res.end()
  })
  fastify.addHook('onClose', async () => {
    await sessions.close()
    events.close()
  })

  fastify.decorate('mcpSessions', sessions)
  fastify.decorate('mcpTool', function mcpTool (definition, handler) {
    registry.register(definition, handler)
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
