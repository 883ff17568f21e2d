import fp from 'fastify-plugin'
import type { FastifyBaseLogger, FastifyError, FastifyInstance, FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify'
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http'
import { ToolRegistry, type ObjectSchema, type RegisteredTool, type ToolDefinition, type ToolHandler } from '../lib/mcp/tools.js'
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
import { mcpRequestChannel, mcpRequestMessage, sessionChannel, streamChannel } from '../lib/observability/channels.js'
import { LOGGING_LEVELS, PINO_FOR_LEVEL, loggingLevelIndex, logMessage, type LogSink, type LoggingLevel } from '../lib/mcp/logging.js'
import {
  ClientRequestError, MemoryClientRequestRouter, RedisClientRequestRouter, newClientRequestId,
  type AnswerOutcome, type ClientAnswer, type ClientPeer, type ClientRequestMethod, type ClientRequestRouter, type PendingKind
} from '../lib/mcp/client-requests.js'
import { MemorySessionMessenger, RedisSessionMessenger, type SessionMessenger } from '../lib/mcp/session-messages.js'
import { installFeatures } from '../lib/mcp/features.js'

export { ToolError } from '../lib/mcp/tools.js'
export type { ToolDefinition, ToolHandler, ToolContext, ToolResult, ObjectSchema, JsonObjectSchema, ZodObjectSchema, SchemaValue, Icon } from '../lib/mcp/tools.js'
export { ClientCapabilityError, ClientRequestError, ClientCapabilityBit } from '../lib/mcp/client-requests.js'
export type {
  ClientCapabilities, ClientRequestOptions, ClientRequestFailure, CreateMessageParams, CreateMessageResult, ElicitParams, ElicitResult
} from '../lib/mcp/client-requests.js'
export { LOGGING_LEVELS } from '../lib/mcp/logging.js'
export type { McpLogger, LoggingLevel } from '../lib/mcp/logging.js'
export type { DispatchScope, MethodHandler } from '../lib/mcp/protocol.js'
export { RpcError, RpcFailure } from '../lib/mcp/protocol.js'
export { ResourceNotFoundError, RESOURCE_NOT_FOUND } from '../lib/mcp/resources.js'
export type { ResourceDefinition, ResourceReader, ResourceTemplateDefinition, ResourceTemplateReader, ReadResourceResult } from '../lib/mcp/resources.js'
export type { PromptDefinition, PromptArgumentDefinition, PromptHandler, GetPromptResult } from '../lib/mcp/prompts.js'
export type { CompletionFunction, CompletionAnswer, CompletionContext, McpRequestContext } from '../lib/mcp/completion.js'

/** A notification from server to client outside any request (list_changed, resource updates, log messages). */
export interface McpNotification {
  method: string
  params?: Record<string, unknown>
}

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
  /** Messages in one JSON-RPC batch (protocol 2025-03-26 only); a longer batch is refused (default 20). */
  maxBatch?: number
  /** A batch's answer grows no larger than this; past it, each request left gets an error (default 4 MiB). */
  maxBatchAnswerBytes?: number
  /**
   * Counts a batch's further messages (the request itself was counted when it
   * arrived) against the caller's rate limit; resolves to a refusal (429), or
   * undefined to go on. The rate-limit plugin's `chargeRateLimit` fits.
   */
  chargeRateLimit?: (request: FastifyRequest, count: number) => Promise<{ retryAfterSec: number, message: string } | undefined>
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
  /**
   * Which tools tools/list shows a caller: `all`, or only those whose scopes
   * its token carries (`permitted`). Calls are checked either way.
   * @default 'all'
   * @error mcp: "listTools" must be "all" or "permitted"
   */
  listTools?: 'all' | 'permitted'
  /**
   * MCP log messages at or above this level reach a client that never sent
   * logging/setLevel (the spec leaves the default to the server).
   * @default 'info'
   * @error mcp: "defaultLogLevel" must be an MCP logging level (debug … emergency)
   */
  defaultLogLevel?: LoggingLevel
  /**
   * How long a tool waits for the client's answer to an elicitation or
   * sampling request before it fails with a timeout (a tool may pass its own).
   * @default 300000
   * @error mcp: "clientRequestTimeoutMs" must be a positive integer
   */
  clientRequestTimeoutMs?: number
  /**
   * The `retry` field of the priming event of a call's SSE stream: how long a
   * client of 2025-11-25 or later waits before it reconnects with GET and
   * Last-Event-ID (transports "Resumability and Redelivery").
   * @default 1000
   * @error mcp: "sseRetryMs" must be a positive integer
   */
  sseRetryMs?: number
  /**
   * Items per page of tools/list, prompts/list, resources/list and
   * resources/templates/list; a longer list carries a `nextCursor`.
   * @default 50
   * @error mcp: "pageSize" must be a positive integer
   */
  pageSize?: number
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
  maxBatch: 20,
  maxBatchAnswerBytes: 4 * 1024 * 1024,
  resumeGraceMs: 2000,
  listTools: 'all',
  defaultLogLevel: 'info' as LoggingLevel,
  clientRequestTimeoutMs: 300_000,
  sseRetryMs: 1000,
  pageSize: 50
}

/** Messages of one batch run at most this many at a time: a batch is one client's work, not a fan-out. */
const BATCH_CONCURRENCY = 4

declare module 'fastify' {
  interface FastifyInstance {
    /** Registers an MCP tool, shared by every session. Call it from any plugin registered after `mcp`. */
    mcpTool: <I extends ObjectSchema, O extends ObjectSchema = ObjectSchema>(definition: ToolDefinition<I, O>, handler: ToolHandler<I, O>) => void
    mcpSessions: SessionStore
    /** The registered tools as tools/list describes them (read-only: for documentation pages and the like). */
    mcpToolList: () => ReadonlyArray<ToolListEntry>
    /**
     * Sends a notification on the session's standalone GET stream, on
     * whichever replica holds it; dropped when the session has none.
     */
    mcpNotify: (sessionId: string, notification: McpNotification) => void
    /** Sends a notification to every session of the deployment that holds a GET stream (list_changed and the like). */
    mcpBroadcast: (notification: McpNotification) => void
    /**
     * MCP logging outside a tool call: `notifications/message` on the
     * session's GET stream when `level` is at or above the session's level
     * (and to pino). Inside a call, use the tool context's `mcpLog`.
     */
    mcpLog: (sessionId: string, level: LoggingLevel, data: unknown, logger?: string) => void
  }
}

type ToolListEntry = ReturnType<ToolRegistry['list']>['tools'][number]

const ANONYMOUS = 'anonymous'
const INVALID_IN_BATCH = JSON.stringify(rpcError(null, RpcError.InvalidRequest, 'Invalid Request: not a JSON-RPC 2.0 message'))
/* c8 ignore next -- for promises that settle without rejecting: there is nothing to do */
const ignore = (): void => {}
const NEVER_ABORTED = new AbortController().signal
const CLOSING_BRACE = Buffer.from('}')
/** An answer POSTed without a session (stateless): no request of this server can await it. */
const NO_SESSION_ANSWER: AnswerOutcome = { accepted: false, code: RpcError.InvalidRequest, message: 'Invalid Request: this server sends requests only within a session; no request awaits this response' }
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

/**
 * An id and no data: the client learns where to resume from before anything
 * else comes; for 2025-11-25 clients with `retry`, how long to wait before
 * reconnecting when the server closes the stream (2025-11-25 transports
 * "Sending Messages to the Server", "Resumability and Redelivery").
 */
function primingEvent (streamId: string, retryMs: number | undefined): string {
  return retryMs === undefined ? `id: ${eventId(streamId, 0)}\ndata: \n\n` : `id: ${eventId(streamId, 0)}\nretry: ${retryMs}\ndata: \n\n`
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
  /** The response until the call is done: released then, so that nothing that outlives the call holds the request. */
  res: ServerResponse | undefined
  /** The answer streams with event ids: a disconnect leaves the client a chance to resume. */
  resumable = false

  constructor (res: ServerResponse) {
    this.res = res
  }

  /** Cancelled, or the client went away before its answer (and cannot resume it). */
  get aborted (): boolean {
    const res = this.res
    return this.#aborted || (!this.resumable && res !== undefined && res.destroyed && !res.writableEnded)
  }

  get signal (): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController()
      const res = this.res
      if (this.aborted || res === undefined) {
        this.#controller.abort()
      } else {
        // A resumable answer's disconnect is no cancellation: graceBeforeCancel decides after resumeGraceMs.
        /* c8 ignore next -- not yet covered: a resumable streamed call that reads its signal, then loses its client */
        this.#onClose = () => { if (!res.writableEnded && !this.resumable) this.abort() }
        res.once('close', this.#onClose)
      }
    }
    return this.#controller.signal
  }

  abort (): void {
    this.#aborted = true
    this.#controller?.abort()
  }

  /**
   * The session's in-flight Map is old-space and keeps a deleted entry's
   * value until it rehashes: a RunningCall still holding its response there
   * would drag the whole request (socket, buffers, Fastify objects) into the
   * old generation. Releasing it here keeps the request young (issue 15).
   */
  done (): void {
    if (this.#onClose !== undefined) this.res?.removeListener('close', this.#onClose)
    this.#onClose = undefined
    this.res = undefined
  }
}

/**
 * What a tools/call hands the protocol layer. A class, not an object literal
 * with a getter: V8 gives every literal whose accessor is a fresh closure a
 * map of its own, made in the old generation and pointing at the closure, so
 * each request's objects would survive until the next mark-compact (issue 15).
 */
class CallScope implements DispatchScope, LogSink, ClientPeer {
  stream: ServerResponse | undefined
  /** The server ended the stream on purpose (closeStream): the client polls with GET; events are only stored. */
  detached = false
  /** In a session the streamed answer is resumable: every event has an id and is stored. */
  streamId: string | undefined
  seq = 0
  /** A tool may report progress from work it left running after it returned: once the answer is on its way, that progress has nowhere to go. */
  answered = false

  constructor (
    readonly auth: DispatchScope['auth'],
    readonly sessionId: string | undefined,
    readonly protocolVersion: string,
    readonly log: FastifyBaseLogger,
    readonly call: RunningCall,
    readonly reply: FastifyReply,
    readonly session: McpSession | undefined,
    readonly transport: CallTransport
  ) {}

  /** Made only if the tool asks for it: most calls (cache hits) never do. */
  get signal (): AbortSignal {
    return this.call.signal
  }

  /** Log messages of this call go on its answer stream (LogSink). */
  get logSink (): LogSink {
    return this
  }

  /** Requests to the client need a session: its answer comes back as a POST of that session. */
  get peer (): ClientPeer | undefined {
    return this.session === undefined ? undefined : this
  }

  get logLevel (): number {
    return this.session?.logLevel ?? this.transport.defaultLogLevel
  }

  get clientCapabilityBits (): number {
    return (this.session as McpSession).clientCapabilities
  }

  send (notification: JsonRpcNotification): void {
    this.notify(notification)
  }

  notify (notification: JsonRpcNotification): void {
    if (this.answered || this.call.aborted) return
    this.emit(notification)
  }

  /** Writes a message on the answer stream, opening it (and storing the message, when resumable). */
  emit (message: JsonRpcNotification | JsonRpcRequest): void {
    const stream = this.stream ?? this.#open()
    if (this.streamId === undefined) {
      stream.write(sseEvent(message))
      return
    }
    const data = JSON.stringify(message)
    this.transport.events.append((this.session as McpSession).id, this.streamId, { seq: ++this.seq, data, final: false })
    if (!stream.writableEnded && !stream.destroyed) stream.write(sseEventWithId(eventId(this.streamId, this.seq), data))
  }

  #open (): ServerResponse {
    const stream = this.stream = this.transport.openSse(this.reply)
    const session = this.session
    if (session !== undefined) {
      const streamId = this.streamId = newStreamId()
      const call = this.call
      call.resumable = true
      stream.write(primingEvent(streamId, this.protocolVersion >= '2025-11-25' ? this.transport.sseRetryMs : undefined))
      stream.once('close', () => { if (!this.answered && !this.detached) this.transport.graceBeforeCancel(session, streamId, call) })
    }
    return stream
  }

  request (method: ClientRequestMethod, params: Record<string, unknown>, timeoutMs: number | undefined): Promise<Record<string, unknown>> {
    return this.transport.requestClient(this, method, params, timeoutMs)
  }

  /**
   * MCP 2025-11-25 transports "Sending Messages to the Server": the server
   * MAY close the SSE stream before the response; the client then polls with
   * GET and Last-Event-ID. Only where that works: in a session (resumable
   * streams), for clients that know the priming event's retry.
   */
  closeStream (): void {
    if (this.session === undefined || this.protocolVersion < '2025-11-25' || this.answered || this.detached) return
    const stream = this.stream ?? this.#open()
    this.detached = true
    stream.end()
  }

  /** Ends a streamed answer with the response, its last event (stored too, when resumable). */
  finish (response: JsonRpcResponse): void {
    const stream = this.stream as ServerResponse
    if (this.streamId === undefined) {
      stream.end(sseEvent(response))
      return
    }
    const data = JSON.stringify(response)
    this.transport.events.append((this.session as McpSession).id, this.streamId, { seq: ++this.seq, data, final: true })
    if (!stream.writableEnded) stream.end(sseEventWithId(eventId(this.streamId, this.seq), data))
  }
}

/** What a call's scope needs from the transport: made once per plugin, never per request. */
interface CallTransport {
  openSse: (reply: FastifyReply) => ServerResponse
  events: EventStore
  graceBeforeCancel: (session: McpSession, streamId: string, call: RunningCall) => void
  requestClient: (scope: CallScope, method: ClientRequestMethod, params: Record<string, unknown>, timeoutMs: number | undefined) => Promise<Record<string, unknown>>
  defaultLogLevel: number
  sseRetryMs: number
}

function validateOptions (opts: McpPluginOptions): void {
  const fail = (what: string): never => { throw new Error(`mcp: ${what}`) }
  if (opts.path !== undefined && !opts.path.startsWith('/')) fail('"path" must start with /')
  if (opts.listTools !== undefined && opts.listTools !== 'all' && opts.listTools !== 'permitted') fail('"listTools" must be "all" or "permitted"')
  if (opts.defaultLogLevel !== undefined && loggingLevelIndex(opts.defaultLogLevel) === undefined) fail(`"defaultLogLevel" must be an MCP logging level (${LOGGING_LEVELS.join(', ')})`)
  for (const key of ['sessionIdleTtlMs', 'maxSessions', 'maxSessionsPerSubject', 'bodyLimit', 'keepAliveMs', 'maxBatch', 'maxBatchAnswerBytes', 'resumeGraceMs', 'clientRequestTimeoutMs', 'sseRetryMs', 'pageSize'] as const) {
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
  const protocol = new McpProtocol({ registry, serverInfo: opts.serverInfo, instructions: opts.instructions, listPermittedOnly: opts.listTools === 'permitted', pageSize: opts.pageSize })
  // Prompts, resources, subscriptions and completion (issue 10): methods and decorators of their own.
  const features = installFeatures(fastify, protocol, { pageSize: opts.pageSize, stateless: opts.stateless, redis: opts.redis, sessionIdleTtlMs: opts.sessionIdleTtlMs })
  /** Scopes the endpoint itself requires (the mcp-auth plugin's): a tool's challenge names them with its own. */
  const endpointScopes: readonly string[] = opts.auth ? fastify.requiredScopes : []
  /** Whether some tool needs scopes of its own (only with auth): until one does, calls skip the check. */
  let scopedTools = false
  /** Every open SSE response (standalone GET streams and streaming POST answers), for keep-alive and shutdown. */
  const openStreams = new Set<ServerResponse>()
  const storeOptions: SessionStoreOptions = {
    idleTtlMs: opts.sessionIdleTtlMs,
    maxSessions: opts.maxSessions,
    maxSessionsPerSubject: opts.maxSessionsPerSubject,
    onEnd (session, reason) {
      session.stream?.end()
      if (sessionChannel.hasSubscribers) sessionChannel.publish({ event: 'closed', reason })
      events.endSession(session.id)
      features.sessionEnded(session.id, reason)
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
  const callTransport: CallTransport = {
    openSse, events, graceBeforeCancel, requestClient, defaultLogLevel: loggingLevelIndex(opts.defaultLogLevel) as number, sseRetryMs: opts.sseRetryMs
  }
  const clientRequests: ClientRequestRouter = opts.redis !== undefined ? new RedisClientRequestRouter(opts.redis) : new MemoryClientRequestRouter()
  const messenger: SessionMessenger = opts.redis !== undefined
    ? new RedisSessionMessenger(opts.redis, deliverLocally, deliverToAll,
      /* c8 ignore next -- Redis failing on a publish (timing): the notification is dropped, as for a session without a stream */
      (err) => fastify.log.warn({ err: { message: err.message } }, 'MCP notification not published'))
    : new MemorySessionMessenger(deliverLocally, deliverToAll)
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
    if (streamChannel.hasSubscribers) streamChannel.publish({ event: 'opened' })
    res.once('close', () => { openStreams.delete(res); if (streamChannel.hasSubscribers) streamChannel.publish({ event: 'closed' }) })
    return res
  }

  /**
   * Results that are the same object again (the tools/list result, a tool
   * answer served from a cache) keep their JSON, as UTF-8 bytes: only the
   * envelope with the request id is built per request. Results are treated
   * as immutable. Bytes, not a string: a cached answer of some kilobytes
   * would otherwise be copied twice per request on the JavaScript heap (the
   * string with its envelope, then its UTF-8 encoding for the socket), and
   * that young-generation churn is what makes scavenges long (issue 15).
   * A Buffer of that size lives outside the heap.
   */
  const serializedResults = new WeakMap<object, Buffer>()
  function resultBytes (result: object): Buffer {
    let bytes = serializedResults.get(result)
    if (bytes === undefined) {
      bytes = Buffer.from(JSON.stringify(result))
      serializedResults.set(result, bytes)
    }
    return bytes
  }
  /** The response as JSON, or undefined when it carries no object result (batches only). */
  function responseJson (response: JsonRpcResponse): string | undefined {
    const result = response.result
    if (result === null || typeof result !== 'object') return undefined
    return `{"jsonrpc":"2.0","id":${JSON.stringify(response.id)},"result":${resultBytes(result).toString()}}`
  }
  function sendResponse (reply: FastifyReply, response: JsonRpcResponse): FastifyReply {
    const result = response.result
    if (result === null || typeof result !== 'object') return reply.send(response)
    const body = Buffer.concat([Buffer.from(`{"jsonrpc":"2.0","id":${JSON.stringify(response.id)},"result":`), resultBytes(result), CLOSING_BRACE])
    return reply.header('content-type', 'application/json; charset=utf-8').send(body)
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
    if (msg.method !== 'tools/call') {
      const scope: DispatchScope = {
        auth: request.auth,
        sessionId: session?.id,
        protocolVersion,
        log: request.log,
        signal: NEVER_ABORTED,
        notify: undefined
      }
      const response = await protocol.handle(msg, scope)
      if (mcpRequestChannel.hasSubscribers) mcpRequestChannel.publish(mcpRequestMessage(request, msg, response, registry))
      await sendResponse(reply, response)
      return
    }

    const needed = scopedTools ? missingScopes(request, msg) : undefined
    if (needed !== undefined) {
      fastify.refuseInsufficientScope(request, reply, needed)
      return
    }

    // A tool call can run long: it gets a signal (client cancel, disconnect,
    // session end) and may stream progress, switching the answer to SSE
    // (post() has checked that the client accepts SSE).
    const call = new RunningCall(reply.raw)
    if (session !== undefined) (session.inflight ??= new Map()).set(msg.id, call)
    const callScope = new CallScope(request.auth, session?.id, protocolVersion, request.log, call, reply, session, callTransport)
    try {
      const response = await protocol.handle(msg, callScope)
      callScope.answered = true
      if (mcpRequestChannel.hasSubscribers) mcpRequestChannel.publish(mcpRequestMessage(request, msg, response, registry))
      if (callScope.stream === undefined) {
        await sendResponse(reply, response)
      } else {
        callScope.finish(response)
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
        /* c8 ignore start -- Redis failing mid-resume (timing): end the stream, the client resumes again from its last id */
      } catch {
        res.end()
      }
      /* c8 ignore stop */
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
      if (mcpRequestChannel.hasSubscribers) mcpRequestChannel.publish(mcpRequestMessage(request, msg, { error: err as RpcFailure }))
      await reply.send(rpcError(msg.id, (err as RpcFailure).code, (err as RpcFailure).message))
      return
    }
    if (!opts.stateless) {
      let session: McpSession
      try {
        const created = sessions.create(subjectOf(request), init.protocolVersion, init.clientInfo, init.clientCapabilities)
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
      if (sessionChannel.hasSubscribers) sessionChannel.publish({ event: 'opened' })
      request.log.info({ session: session.id.slice(0, 8), subject: session.subject, protocolVersion: init.protocolVersion, client: init.clientInfo?.name }, 'MCP session opened')
    }
    if (mcpRequestChannel.hasSubscribers) mcpRequestChannel.publish(mcpRequestMessage(request, msg, undefined))
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
    // A batch is many requests in one: bounded in length, and each message
    // counts against the caller's rate limit like a request of its own.
    if (body.length > opts.maxBatch) {
      refuse(reply, 400, RpcError.InvalidRequest, `Invalid Request: a batch may hold at most ${opts.maxBatch} messages (this one holds ${body.length}); send the rest in further requests`)
      return
    }
    if (opts.chargeRateLimit !== undefined && body.length > 1) {
      const refusal = await opts.chargeRateLimit(request, body.length - 1)
      if (refusal !== undefined) {
        reply.header('retry-after', String(refusal.retryAfterSec))
        refuse(reply, 429, RpcError.ServerError, refusal.message)
        return
      }
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
    // JSON of each answer, in the batch's order (JSON-RPC §6 allows any order; keeping it is kinder).
    const answers: string[] = []
    const requests: Array<[number, JsonRpcRequest]> = []
    for (const msg of body) {
      const kind = classify(msg)
      if (kind === 'request') {
        requests.push([answers.length, msg as JsonRpcRequest])
        answers.push('')
      } else if (kind === 'notification') {
        notificationFrom(msg as JsonRpcNotification, session)
      } else if (kind === 'invalid') {
        answers.push(INVALID_IN_BATCH)
      }
    }
    if (answers.length === 0) {
      await reply.code(202).send()
      return
    }

    // The answer is bounded: once it would pass maxBatchAnswerBytes, no
    // further message runs, and each request left is answered with an error.
    let bytes = 0
    let full = false
    const tooLarge = (id: JsonRpcRequest['id']): string => JSON.stringify(rpcError(id, RpcError.ServerError,
      `Response too large: this batch's answers would exceed ${opts.maxBatchAnswerBytes} bytes; send this request on its own`))
    let next = 0
    async function worker (): Promise<void> {
      while (next < requests.length) {
        const [index, msg] = requests[next++] as [number, JsonRpcRequest]
        if (!full) {
          const response = await protocol.handle(msg, scope)
          const json = responseJson(response) ?? JSON.stringify(response)
          const size = Buffer.byteLength(json)
          if (bytes + size <= opts.maxBatchAnswerBytes) {
            bytes += size
            answers[index] = json
            continue
          }
          full = true
        }
        answers[index] = tooLarge(msg.id)
      }
    }
    const workers: Array<Promise<void>> = []
    for (let i = 0; i < Math.min(BATCH_CONCURRENCY, requests.length); i++) workers.push(worker())
    await Promise.all(workers)
    await reply.header('content-type', 'application/json; charset=utf-8').send(`[${answers.join(',')}]`)
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
      // Not the id itself: a client-chosen value may be anything, a token included.
      if (typeof id === 'string' || typeof id === 'number') request.log.debug({ idType: typeof id }, 'invalid JSON-RPC message')
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
        if (mcpRequestChannel.hasSubscribers) mcpRequestChannel.publish(mcpRequestMessage(request, body as JsonRpcNotification, undefined))
        await reply.code(202).send()
        return
      default:
        await clientAnswer(reply, body as ClientAnswer, session)
    }
  }

  /**
   * A client's answer to a request this server sent (elicitation, sampling).
   * MCP transports "Sending Messages to the Server": 202 when the server
   * accepts it; an HTTP error (400) when it cannot: an answer to no request
   * of this session (never sent, another session's, already answered), or a
   * malformed one. The waiting tool is on this replica or another.
   */
  async function clientAnswer (reply: FastifyReply, answer: ClientAnswer, session: McpSession | undefined): Promise<void> {
    let outcome: AnswerOutcome
    try {
      const judged = session === undefined ? NO_SESSION_ANSWER : clientRequests.answer(session.id, answer)
      outcome = judged instanceof Promise ? await judged : judged
    } catch (err) {
      reply.log.warn({ err: { message: (err as Error).message } }, 'MCP client answer could not be routed')
      reply.header('retry-after', '5')
      refuse(reply, 503, RpcError.ServerError, 'Service Unavailable: shared storage is unavailable; send the answer again shortly')
      return
    }
    if (outcome.accepted) {
      await reply.code(202).send()
      return
    }
    refuse(reply, 400, outcome.code, outcome.message)
  }

  /**
   * Sends a request to the client on the call's stream and waits for its
   * answer, or a timeout, the call's cancellation or the session's end
   * (MCP client "Elicitation", "Sampling"; utilities "Cancellation").
   */
  async function requestClient (scope: CallScope, method: ClientRequestMethod, params: Record<string, unknown>, timeoutMs: number | undefined): Promise<Record<string, unknown>> {
    const session = scope.session as McpSession
    const call = scope.call
    if (scope.answered || call.aborted) throw new ClientRequestError('cancelled', `The call ended before ${method} could be sent.`)
    const timeout = timeoutMs ?? opts.clientRequestTimeoutMs
    if (!Number.isInteger(timeout) || timeout <= 0) throw new TypeError('mcp: timeoutMs must be a positive integer')
    const kind: PendingKind = method === 'elicitation/create'
      ? (params.mode === 'url' ? 'elicit-url' : 'elicit-form')
      : (params.tools !== undefined ? 'sample-tools' : 'sample')
    const id = newClientRequestId()
    let resolve!: (result: Record<string, unknown>) => void
    let reject!: (err: ClientRequestError) => void
    const answered = new Promise<Record<string, unknown>>((_resolve, _reject) => { resolve = _resolve; reject = _reject })
    await clientRequests.expect(id, session.id, kind, timeout, { resolve, reject })
    const stop = (err: ClientRequestError): void => {
      /* c8 ignore next -- the answer and the timeout (or the cancel) in the same turn: the answer won */
      if (!clientRequests.forget(id)) return
      reject(err)
      // MCP utilities "Cancellation": the client learns that the request is void (not after the session's end: nobody listens).
      if (err.reason !== 'session-ended' && scope.stream !== undefined && !scope.answered) {
        scope.emit({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: id, reason: err.message } })
      }
    }
    const timer = setTimeout(() => stop(new ClientRequestError('timeout', `The client did not answer ${method} within ${timeout} ms.`)), timeout)
    const signal = call.signal
    const onAbort = (): void => {
      const ended = sessions.get(session.id) !== session
      stop(ended
        ? new ClientRequestError('session-ended', `The session ended before the client answered ${method}.`)
        : new ClientRequestError('cancelled', `The call was cancelled before the client answered ${method}.`))
    }
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      /* c8 ignore next -- cancelled while the shared store was recording the request (timing): it is never sent */
      if (signal.aborted) onAbort()
      else scope.emit({ jsonrpc: '2.0', id, method, params })
      return await answered
    } finally {
      clearTimeout(timer)
      signal.removeEventListener('abort', onAbort)
    }
  }

  /** Writes on a session's standalone GET stream if this replica holds it (see SessionMessenger). */
  function deliverLocally (sessionId: string, data: string, logLevel: number | undefined): boolean {
    const session = sessions.get(sessionId)
    const stream = session?.stream
    if (stream === undefined) return false
    if (logLevel === undefined || logLevel >= ((session as McpSession).logLevel ?? callTransport.defaultLogLevel)) {
      stream.write(`event: message\ndata: ${data}\n\n`)
    }
    return true
  }

  function deliverToAll (data: string): void {
    const event = `event: message\ndata: ${data}\n\n`
    for (const session of sessions.values()) session.stream?.write(event)
  }

  function notificationJson (notification: McpNotification): string {
    if (notification === null || typeof notification !== 'object' || typeof notification.method !== 'string' || !notification.method.startsWith('notifications/')) {
      throw new TypeError('mcp: a notification needs a method starting with notifications/')
    }
    if (notification.params !== undefined && (notification.params === null || typeof notification.params !== 'object' || Array.isArray(notification.params))) {
      throw new TypeError('mcp: a notification\'s params must be an object')
    }
    return JSON.stringify({ jsonrpc: '2.0', method: notification.method, ...(notification.params !== undefined && { params: notification.params }) })
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
    clientRequests.close()
    messenger.close()
  })

  // MCP server utilities "Logging": the level is the session's, kept by the store (so every replica knows it).
  protocol.setCapability('logging', {})
  protocol.setMethod('logging/setLevel', async (params, scope) => {
    const level = loggingLevelIndex(params?.level)
    if (level === undefined) throw new RpcFailure(RpcError.InvalidParams, `Invalid params: level must be one of ${LOGGING_LEVELS.join(', ')}`)
    // Stateless: no session keeps it; each request's messages follow defaultLogLevel.
    if (scope.sessionId === undefined) return {}
    try {
      await sessions.setLogLevel(scope.sessionId, level)
    } catch (err) {
      scope.log.warn({ err: { message: (err as Error).message } }, 'MCP log level not stored')
      throw new RpcFailure(RpcError.InternalError, 'Internal error: the level could not be stored; retry shortly')
    }
    return {}
  })

  fastify.decorate('mcpNotify', function mcpNotify (sessionId: string, notification: McpNotification) {
    messenger.notify(sessionId, notificationJson(notification))
  })
  fastify.decorate('mcpBroadcast', function mcpBroadcast (notification: McpNotification) {
    messenger.broadcast(notificationJson(notification))
  })
  fastify.decorate('mcpLog', function mcpLog (sessionId: string, level: LoggingLevel, data: unknown, logger?: string) {
    const index = loggingLevelIndex(level)
    if (index === undefined) throw new TypeError(`mcp: ${JSON.stringify(level)} is not an MCP logging level (${LOGGING_LEVELS.join(', ')})`)
    fastify.log[PINO_FOR_LEVEL[index] as 'info']({ session: sessionId.slice(0, 8), mcpLog: { level, ...(logger !== undefined && { logger }) }, data }, 'session log')
    messenger.notify(sessionId, JSON.stringify(logMessage(level, data, logger)), index)
  })

  fastify.decorate('mcpSessions', sessions)
  fastify.decorate('mcpToolList', () => registry.list().tools)
  /** Registrations after this announce themselves (list_changed). */
  let serving = false
  fastify.addHook('onReady', async () => { serving = true })
  fastify.decorate('mcpTool', function mcpTool (definition, handler) {
    if (!opts.auth && Array.isArray(definition?.scopes) && definition.scopes.length > 0) {
      throw new Error(`mcp: tool "${definition.name}" declares scopes, but the endpoint runs without auth (auth: false)`)
    }
    registry.register(definition, handler)
    for (const scope of (registry.get(definition.name) as RegisteredTool).scopes) {
      fastify.scopesInUse.add(scope)
      scopedTools = true
    }
    // A tool registered once the server serves changes the list clients hold (MCP tools "List Changed Notification").
    if (serving) fastify.mcpBroadcast({ method: 'notifications/tools/list_changed' })
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
