import type { FastifyBaseLogger } from 'fastify'
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js'
import type { AuthContext } from '../auth/access-token-verifier.js'
import { ToolError, type CallToolResult, type ToolContext, type ToolRegistry } from './tools.js'
import { SessionLogger, type LogSink, type McpLogger } from './logging.js'
import {
  ClientCapabilityBit, ClientCapabilityError, clientCapabilitiesOf, clientCapabilityBits,
  type ClientCapabilities, type ClientPeer, type ClientRequestOptions, type CreateMessageParams, type CreateMessageResult,
  type ElicitParams, type ElicitResult
} from './client-requests.js'
import { toolCallChannel, type ToolCallMessage } from '../observability/channels.js'

/** JSON-RPC 2.0 error codes (JSON-RPC §5.1) and the MCP ones. */
export const RpcError = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** Transport-level refusals (the SDK's ConnectionClosed code, used the same way by its transport). */
  ServerError: -32000,
  SessionNotFound: -32001
} as const

/** The versions this server speaks, newest first. */
export const PROTOCOL_VERSIONS: readonly string[] = SUPPORTED_PROTOCOL_VERSIONS.filter(v => v >= '2024-11-05')
/** MCP transports "Protocol Version Header": without the header, assume 2025-03-26. */
export const DEFAULT_HTTP_PROTOCOL_VERSION = '2025-03-26'

export type RequestId = string | number

export interface JsonRpcRequest {
  jsonrpc: '2.0'
  id: RequestId
  method: string
  params?: Record<string, unknown>
}

export interface JsonRpcNotification {
  jsonrpc: '2.0'
  method: string
  params?: Record<string, unknown>
}

export interface JsonRpcResponse {
  jsonrpc: '2.0'
  id: RequestId | null
  result?: unknown
  error?: { code: number, message: string, data?: unknown }
}

export type MessageKind = 'request' | 'notification' | 'response' | 'invalid'

function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** Sorts a parsed body element by its JSON-RPC 2.0 shape (§4, §5) without allocating. */
export function classify (msg: unknown): MessageKind {
  if (!isObject(msg) || msg.jsonrpc !== '2.0') return 'invalid'
  const { id, method, params } = msg
  if (params !== undefined && !isObject(params)) return 'invalid' // MCP params are always objects
  if (typeof method === 'string') {
    if (id === undefined) return 'notification'
    // MCP forbids null ids (basic protocol "Requests").
    return (typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id))) ? 'request' : 'invalid'
  }
  if (method === undefined && (typeof id === 'string' || typeof id === 'number') && ('result' in msg || 'error' in msg)) return 'response'
  return 'invalid'
}

export function rpcError (id: RequestId | null, code: number, message: string, data?: unknown): JsonRpcResponse {
  return data === undefined
    ? { jsonrpc: '2.0', id, error: { code, message } }
    : { jsonrpc: '2.0', id, error: { code, message, data } }
}

export class RpcFailure extends Error {
  constructor (readonly code: number, message: string, readonly data?: unknown) {
    super(message)
  }
}

export interface ServerInfo {
  name: string
  version: string
  title?: string
}

export interface DispatchScope {
  auth: AuthContext | null
  sessionId: string | undefined
  protocolVersion: string
  log: FastifyBaseLogger
  /** Aborts the work of this request (client cancel, session end, disconnect). */
  signal: AbortSignal
  /** Present when the answer can stream: sends a notification before the response. */
  notify: ((notification: JsonRpcNotification) => void) | undefined
  /** Where MCP log messages of this request go, besides pino (absent: pino only). */
  logSink?: LogSink | undefined
  /** The session's client, for requests from server to client (absent outside a session's tools/call). */
  peer?: ClientPeer | undefined
}

/**
 * Serves one JSON-RPC method beyond the built-in ones (prompts, resources,
 * completion, logging…). Its return value is the result; an RpcFailure
 * becomes that JSON-RPC error, anything else an internal error.
 */
export type MethodHandler = (params: Record<string, unknown> | undefined, scope: DispatchScope) => unknown

/** Methods the protocol answers itself: no extension may take them over. */
const BUILT_IN_METHODS = new Set(['initialize', 'ping', 'tools/list', 'tools/call'])

/** Results that report a failure of the tool itself (not one the tool chose to report): for observers. */
const unexpectedFailures = new WeakSet<CallToolResult>()

function failedUnexpectedly (tool: string): CallToolResult {
  const result: CallToolResult = { content: [{ type: 'text', text: `The tool ${tool} failed unexpectedly; try again later.` }], isError: true }
  unexpectedFailures.add(result)
  return result
}

/** sendProgress when the client asked for no progress. */
const ignoreProgress = (): void => {}

/** The longest clientInfo name or version kept, in UTF-16 code units. */
export const CLIENT_INFO_MAX_LENGTH = 64

function shortString (value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined
  if (value.length <= CLIENT_INFO_MAX_LENGTH) return value
  // Never cut a surrogate pair in half: the log line would carry a lone surrogate.
  const end = /[\uD800-\uDBFF]/.test(value[CLIENT_INFO_MAX_LENGTH - 1] as string) ? CLIENT_INFO_MAX_LENGTH - 1 : CLIENT_INFO_MAX_LENGTH
  // A copy, not a slice: V8 makes a slice of a long string point into it, so
  // the session would keep the whole megabyte alive behind its 64 characters.
  return Buffer.from(value.slice(0, end), 'utf8').toString('utf8')
}

/**
 * Only `name` and `version`, each cut to CLIENT_INFO_MAX_LENGTH: the session
 * keeps it and the log line names it, so a client must not choose their size
 * (a 1 MB name would be 1 MB per session and per log line).
 */
export function clientInfoOf (value: unknown): { name?: string, version?: string } | undefined {
  if (!isObject(value)) return undefined
  const name = shortString(value.name)
  const version = shortString(value.version)
  return {
    ...(name !== undefined && { name }),
    ...(version !== undefined && { version })
  }
}

/**
 * A tool's view of its call. A class, not an object literal with a getter:
 * V8 gives each literal whose accessor is a fresh closure a map of its own in
 * the old generation, which would keep every request's objects alive until
 * the next mark-compact (issue 15).
 */
class ToolCallContext implements ToolContext {
  readonly auth: AuthContext | null
  readonly sessionId: string | undefined
  readonly log: FastifyBaseLogger
  readonly sendProgress: ToolContext['sendProgress']
  #mcpLog: McpLogger | undefined

  constructor (private readonly scope: DispatchScope, progressToken: string | number | undefined) {
    this.auth = scope.auth
    this.sessionId = scope.sessionId
    this.log = scope.log
    // A plain function, so that a tool may pass it around detached.
    this.sendProgress = scope.notify !== undefined && progressToken !== undefined
      ? (progress, total, message) => scope.notify?.({
          jsonrpc: '2.0',
          method: 'notifications/progress',
          params: { progressToken, progress, ...(total !== undefined && { total }), ...(message !== undefined && { message }) }
        })
      : ignoreProgress
  }

  /** Read through: the transport makes the signal only if the tool asks for it. */
  get signal (): AbortSignal {
    return this.scope.signal
  }

  /** Made on first use: most calls never log to the client. */
  get mcpLog (): McpLogger {
    this.#mcpLog ??= new SessionLogger(this.log, this.scope.logSink)
    return this.#mcpLog
  }

  get clientCapabilities (): ClientCapabilities | undefined {
    const peer = this.scope.peer
    return peer === undefined ? undefined : clientCapabilitiesOf(peer.clientCapabilityBits)
  }

  async elicit (params: ElicitParams, options?: ClientRequestOptions): Promise<ElicitResult> {
    // MCP 2025-11-25 client "Elicitation": mode defaults to form; each mode needs its own capability.
    const url = (params as { mode?: unknown }).mode === 'url'
    this.#needs(url ? ClientCapabilityBit.ElicitationUrl : ClientCapabilityBit.ElicitationForm, url ? 'URL-mode elicitation' : 'elicitation')
    return await (this.scope.peer as ClientPeer).request('elicitation/create', params as Record<string, unknown>, options?.timeoutMs) as ElicitResult
  }

  async createMessage (params: CreateMessageParams, options?: ClientRequestOptions): Promise<CreateMessageResult> {
    this.#needs(ClientCapabilityBit.Sampling, 'sampling')
    // MCP 2025-11-25 client "Sampling": tools in a request need the client's sampling.tools capability.
    if (params.tools !== undefined || params.toolChoice !== undefined) this.#needs(ClientCapabilityBit.SamplingTools, 'tool use in sampling')
    // …and includeContext other than "none" its sampling.context capability.
    if (params.includeContext !== undefined && params.includeContext !== 'none') this.#needs(ClientCapabilityBit.SamplingContext, 'context inclusion in sampling')
    return await (this.scope.peer as ClientPeer).request('sampling/createMessage', params as Record<string, unknown>, options?.timeoutMs) as CreateMessageResult
  }

  closeSseStream (): void {
    this.scope.peer?.closeStream()
  }

  #needs (bit: number, what: string): void {
    const peer = this.scope.peer
    if (peer === undefined || (peer.clientCapabilityBits & bit) === 0) throw new ClientCapabilityError(what)
  }
}

/**
 * The server side of MCP's base protocol and tools feature, one instance for
 * the whole server: it keeps no per-session state, so sessions cost only
 * their entry in the session store.
 */
export class McpProtocol {
  readonly #registry: ToolRegistry
  /** Tool results already checked against their outputSchema, and what the check made of them. */
  readonly #checked = new WeakMap<CallToolResult, CallToolResult>()
  readonly #serverInfo: ServerInfo
  readonly #instructions: string | undefined
  readonly #listPermittedOnly: boolean
  readonly #methods = new Map<string, MethodHandler>()
  readonly #capabilities: Record<string, unknown> = { tools: { listChanged: false } }

  constructor (opts: { registry: ToolRegistry, serverInfo: ServerInfo, instructions?: string, listPermittedOnly?: boolean }) {
    this.#registry = opts.registry
    this.#serverInfo = opts.serverInfo
    this.#instructions = opts.instructions
    this.#listPermittedOnly = opts.listPermittedOnly ?? false
  }

  /** Serves a further method. Registered once per method, before the server answers requests. */
  setMethod (method: string, handler: MethodHandler): void {
    if (BUILT_IN_METHODS.has(method)) throw new Error(`mcp: ${method} is answered by the protocol itself`)
    if (this.#methods.has(method)) throw new Error(`mcp: ${method} already has a handler`)
    this.#methods.set(method, handler)
  }

  /** Declares a server capability in every initialize result (MCP lifecycle "Capability Negotiation"). */
  setCapability (name: string, value: Record<string, unknown>): void {
    this.#capabilities[name] = value
  }

  /** MCP lifecycle "Version Negotiation": the client's version if we speak it, else our latest. */
  initialize (params: Record<string, unknown> | undefined): {
    protocolVersion: string
    clientInfo: { name?: string, version?: string } | undefined
    /** What the client declared, as bits (ClientCapabilityBit): all a session keeps of it. */
    clientCapabilities: number
    result: Record<string, unknown>
  } {
    const requested = params?.protocolVersion
    if (typeof requested !== 'string') throw new RpcFailure(RpcError.InvalidParams, 'Invalid params: initialize needs a protocolVersion string')
    if (params?.capabilities !== undefined && !isObject(params.capabilities)) throw new RpcFailure(RpcError.InvalidParams, 'Invalid params: capabilities must be an object')
    const clientInfo = clientInfoOf(params?.clientInfo)
    const protocolVersion = PROTOCOL_VERSIONS.includes(requested) ? requested : LATEST_PROTOCOL_VERSION
    return {
      protocolVersion,
      clientInfo,
      clientCapabilities: clientCapabilityBits(params?.capabilities),
      result: {
        protocolVersion,
        capabilities: this.#capabilities,
        serverInfo: this.#serverInfo,
        ...(this.#instructions !== undefined && { instructions: this.#instructions })
      }
    }
  }

  /** Answers one request. Never rejects: every failure becomes a JSON-RPC error response. */
  async handle (msg: JsonRpcRequest, scope: DispatchScope): Promise<JsonRpcResponse> {
    try {
      return { jsonrpc: '2.0', id: msg.id, result: await this.#dispatch(msg, scope) }
    } catch (err) {
      if (err instanceof RpcFailure) return rpcError(msg.id, err.code, err.message, err.data)
      scope.log.error({ err, method: msg.method }, 'MCP request failed')
      return rpcError(msg.id, RpcError.InternalError, 'Internal error')
    }
  }

  #dispatch (msg: JsonRpcRequest, scope: DispatchScope): unknown {
    switch (msg.method) {
      case 'tools/call': return toolCallChannel.hasSubscribers ? this.#observedToolCall(msg, scope) : this.#callTool(msg, scope)
      case 'tools/list': {
        // Without the auth plugin request.auth is undefined, not null: there is no caller to filter for.
        const granted = this.#listPermittedOnly ? scope.auth?.scopes : undefined
        return granted === undefined ? this.#registry.list() : this.#registry.listPermitted(granted)
      }
      case 'ping': return {}
      case 'initialize':
        // Only valid as the first message of a session, which the transport handles.
        throw new RpcFailure(RpcError.InvalidRequest, 'Invalid Request: initialize must be sent alone, without a session')
      default: {
        const handler = this.#methods.get(msg.method)
        if (handler === undefined) throw new RpcFailure(RpcError.MethodNotFound, `Method not found: ${msg.method}`)
        return handler(msg.params, scope)
      }
    }
  }

  /** A tool call timed and reported on the tool-call channel (only while someone listens). */
  async #observedToolCall (msg: JsonRpcRequest, scope: DispatchScope): Promise<CallToolResult> {
    const startedAt = performance.now()
    let outcome: ToolCallMessage['outcome'] = 'invalid_arguments'
    try {
      const result = await this.#callTool(msg, scope)
      outcome = result.isError !== true ? 'ok' : unexpectedFailures.has(result) ? 'failed' : 'tool_error'
      return result
    } finally {
      // Only registered tools: a client-chosen name would make the tool label unbounded.
      const tool = msg.params?.name
      if (typeof tool === 'string' && this.#registry.get(tool) !== undefined) {
        toolCallChannel.publish({ tool, outcome, durationMs: performance.now() - startedAt })
      }
    }
  }

  async #callTool (msg: JsonRpcRequest, scope: DispatchScope): Promise<CallToolResult> {
    const params = msg.params
    const name = params?.name
    if (typeof name !== 'string') throw new RpcFailure(RpcError.InvalidParams, 'Invalid params: tools/call needs a tool name')
    const tool = this.#registry.get(name)
    // MCP tools "Error Handling": an unknown tool is a protocol error.
    if (tool === undefined) throw new RpcFailure(RpcError.InvalidParams, `Unknown tool: ${name}`)
    const args = params?.arguments ?? {}
    if (!isObject(args)) throw new RpcFailure(RpcError.InvalidParams, 'Invalid params: arguments must be an object')

    const parsed = tool.checkInput(args)
    if (!parsed.success) {
      const message = `Invalid arguments for tool ${name}: ${parsed.issues}`
      // 2025-11-25 (SEP-1303) makes input validation errors tool execution
      // errors, so the model can correct itself; earlier versions say -32602.
      if (scope.protocolVersion >= '2025-11-25') return { content: [{ type: 'text', text: message }], isError: true }
      throw new RpcFailure(RpcError.InvalidParams, message)
    }

    const meta = params?._meta as { progressToken?: unknown } | undefined
    const progressToken = meta?.progressToken
    const ctx = new ToolCallContext(scope, typeof progressToken === 'string' || typeof progressToken === 'number' ? progressToken : undefined)
    let result: CallToolResult
    try {
      result = await tool.handler(parsed.data, ctx)
    } catch (err) {
      if (err instanceof ToolError) return { content: [{ type: 'text', text: err.message }], isError: true }
      scope.log.error({ err, tool: name }, 'tool failed')
      return failedUnexpectedly(name)
    }
    if (tool.checkOutput === undefined || result.isError === true) return result
    // A tool that hands back the same result object again (answered from a
    // cache) was checked already: reuse the checked object, so that its
    // serialization can be reused too.
    const known = this.#checked.get(result)
    if (known !== undefined) return known
    // MCP tools "Output Schema": servers MUST return structured results that
    // conform to it; clients reject the whole result otherwise. A tool bug is
    // caught here, where it is logged, rather than in every client.
    const output = tool.checkOutput(result.structuredContent)
    if (!output.success) {
      scope.log.error({ tool: name, issues: output.issues }, 'tool result does not match its outputSchema')
      return failedUnexpectedly(name)
    }
    // The advertised JSON Schema describes what parsing yields (no unknown keys).
    const checked = { ...result, structuredContent: output.data }
    this.#checked.set(result, checked)
    return checked
  }
}
