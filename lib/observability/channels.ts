import { channel } from 'node:diagnostics_channel'

/**
 * What the server's components tell observers (metrics, traces, logs), on
 * node:diagnostics_channel channels: a component publishes without knowing
 * who listens, and an observer subscribes without reaching into components.
 *
 * Publishing is cheap only when nobody listens, so a publisher checks first:
 *
 *   if (toolCallChannel.hasSubscribers) toolCallChannel.publish({ tool, outcome, durationMs })
 *
 * Messages carry bounded values only where an observer may turn them into
 * metric labels (outcomes, reasons, tool names from the registry), never a
 * token, a key, a subject or a session id, except the `request` of an MCP
 * request message, which lets a request-scoped observer (the log line) find
 * the request it belongs to.
 */

const PREFIX = 'finance-news-mcp:'

/** A diagnostics channel that says what it carries. */
export interface TypedChannel<M> {
  readonly name: string | symbol
  readonly hasSubscribers: boolean
  publish: (message: M) => void
  subscribe: (listener: (message: M) => void) => void
  unsubscribe: (listener: (message: M) => void) => boolean
}

function typed<M> (name: string): TypedChannel<M> {
  return channel(PREFIX + name) as unknown as TypedChannel<M>
}

export interface AuthDecisionMessage {
  outcome: 'allowed' | 'denied'
  /** `valid`, `no_credentials`, `not_bearer`, or the failure kind (`invalid_token`, `insufficient_scope`, `invalid_request`, `unavailable`). */
  reason: string
}

export interface JwksFetchMessage {
  outcome: 'ok' | 'error'
  /** Keys held after this fetch (a failed fetch keeps the previous ones). */
  keys: number
}

/** `ok`; `tool_error` (an isError result); `error` (a JSON-RPC error answer). */
export type McpOutcome = 'ok' | 'tool_error' | 'error'

export interface McpRequestMessage {
  /** The JSON-RPC method if it is an MCP method, else `unknown` (a client-chosen string could be anything, a token included). */
  method: string
  /** The tool name of a tools/call, if the tool is registered (else `unknown`). */
  tool: string | undefined
  outcome: McpOutcome
  /** The JSON-RPC error code of an `error` outcome. */
  errorCode: number | undefined
  /** The Fastify request it answers (for request-scoped observers; never a label). */
  request: object
}

export interface ToolCallMessage {
  tool: string
  /** `ok`, `tool_error` (isError result), `invalid_arguments`, `failed` (threw, or broke its outputSchema). */
  outcome: 'ok' | 'tool_error' | 'invalid_arguments' | 'failed'
  durationMs: number
}

export interface SessionMessage {
  event: 'opened' | 'closed'
  /** Why a session closed: deleted, expired, evicted, shutdown. */
  reason?: string
}

export interface StreamMessage {
  event: 'opened' | 'closed'
}

export interface UpstreamCallMessage {
  /** `ok`, or the failure kind (daily_limit, rate_limited, invalid_request, premium_only, demo_key, unavailable, bad_response). */
  outcome: string
  durationMs: number
}

export interface QuotaMessage {
  used: number
  remaining: number
  limit: number
}

export interface CacheMessage {
  /** `hit` (fresh), `miss` (asked upstream), `stale` (past freshness, served because upstream could not answer). */
  result: 'hit' | 'miss' | 'stale'
}

export interface CircuitMessage {
  state: 'open' | 'closed'
}

export interface RateLimitedMessage {
  /** The route's URL pattern (bounded), e.g. `/mcp`. */
  route: string
}

export interface OverloadMessage {
  /** What is over its threshold: eventLoopDelay, eventLoopUtilization, heapUsedBytes, rssBytes. */
  reason: string
}

export interface RedisMessage {
  outcome: 'ok' | 'error'
  /** The command name for round trips (GET, EVALSHA …), absent for connection errors. */
  command?: string
  durationMs?: number
}

export const authDecisionChannel = typed<AuthDecisionMessage>('auth.decision')
export const jwksFetchChannel = typed<JwksFetchMessage>('auth.jwks-fetch')
export const mcpRequestChannel = typed<McpRequestMessage>('mcp.request')
export const toolCallChannel = typed<ToolCallMessage>('mcp.tool-call')
export const sessionChannel = typed<SessionMessage>('mcp.session')
export const streamChannel = typed<StreamMessage>('mcp.stream')
export const upstreamCallChannel = typed<UpstreamCallMessage>('upstream.call')
export const quotaChannel = typed<QuotaMessage>('upstream.quota')
export const cacheChannel = typed<CacheMessage>('cache.lookup')
export const circuitChannel = typed<CircuitMessage>('upstream.circuit')
export const rateLimitedChannel = typed<RateLimitedMessage>('http.rate-limited')
export const redisChannel = typed<RedisMessage>('redis.command')
export const overloadChannel = typed<OverloadMessage>('http.overloaded')

/** The methods of MCP (2025-06-18 and 2025-11-25) a client sends: the bounded set of method values observers see. */
export const MCP_METHODS: ReadonlySet<string> = new Set([
  'initialize', 'ping', 'tools/list', 'tools/call', 'prompts/list', 'prompts/get', 'resources/list',
  'resources/read', 'resources/templates/list', 'resources/subscribe', 'resources/unsubscribe', 'completion/complete',
  'logging/setLevel', 'tasks/get', 'tasks/list', 'tasks/result', 'tasks/cancel',
  'notifications/initialized', 'notifications/cancelled', 'notifications/progress', 'notifications/roots/list_changed'
])

/** Builds the MCP request message from a JSON-RPC request and its answer (publishers check `hasSubscribers` first). */
export function mcpRequestMessage (
  request: object,
  msg: { method: string, params?: Record<string, unknown> },
  response: { result?: unknown, error?: { code: number } } | undefined,
  tools?: { get: (name: string) => unknown }
): McpRequestMessage {
  const name = msg.method === 'tools/call' ? msg.params?.name : undefined
  const error = response?.error
  const isError = (response?.result as { isError?: unknown } | undefined)?.isError === true
  return {
    method: MCP_METHODS.has(msg.method) ? msg.method : 'unknown',
    tool: typeof name !== 'string' ? undefined : tools?.get(name) !== undefined ? name : 'unknown',
    outcome: error !== undefined ? 'error' : isError ? 'tool_error' : 'ok',
    errorCode: error?.code,
    request
  }
}
