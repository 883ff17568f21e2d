import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'
import { MCP_METHODS, mcpRequestChannel, type McpRequestMessage } from './channels.js'

/** A URL without its query string: a token pasted into a query (`?access_token=…`) must never reach a log line. */
export function pathOf (url: string): string {
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

/** Fastify's `req` log serializer, minus the query string. */
export function requestSerializer (request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: pathOf(request.url),
    remoteAddress: request.ip
  }
}

export interface RequestLogOptions {
  /** Routes (URL patterns) logged at debug only: probes polled every few seconds would drown the log. */
  quietRoutes?: string[]
  /** Routes whose line carries the MCP fields (method, tool, session, subject, outcome). */
  mcpRoutes?: string[]
}

/**
 * What the MCP transport said about a request it answered, kept on the
 * request itself until its log line is written. Not in a WeakMap keyed by
 * the request: V8's scavenger keeps the entries of an old-generation
 * WeakMap alive, so every request (socket buffers, headers, logger and all)
 * would be promoted to the old generation and wait there for a mark-compact:
 * that was most of the whole app's tail latency (issue 15).
 */
const MCP_ANSWER = Symbol('mcpAnswer')
type WithAnswer = Record<typeof MCP_ANSWER, McpRequestMessage | undefined>
mcpRequestChannel.subscribe(message => { (message.request as WithAnswer)[MCP_ANSWER] = message })

/**
 * One log line per request, written when the response is finished (Fastify's
 * default writes two: "incoming request" and "request completed"), with the
 * path but never the query string. For MCP requests the line says what an
 * operator follows a session or a caller by: the JSON-RPC method, the tool,
 * the session id's first 8 characters, the token subject, the outcome, the
 * status and the duration; `reqId` ties it to the request's other lines.
 */
export class RequestLogController extends LogController {
  readonly #quiet: Set<string>
  readonly #mcp: Set<string>

  constructor (opts: RequestLogOptions = {}) {
    super()
    this.#quiet = new Set(opts.quietRoutes ?? ['/health', '/ready', '/metrics'])
    this.#mcp = new Set(opts.mcpRoutes ?? ['/mcp', '/mcp/'])
  }

  override incomingRequest (): void {}

  /** The completion line says 404 already, without the raw URL Fastify's own line carries. */
  override routeNotFound (): void {}

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    const route = request.routeOptions.url
    const line: Record<string, unknown> = {
      method: request.method,
      url: pathOf(request.url),
      statusCode: reply.statusCode,
      durationMs: Math.round(reply.elapsedTime * 10) / 10
    }
    if (route !== undefined && this.#mcp.has(route)) line.mcp = this.#mcpFields(request, reply)
    if (error != null) {
      line.err = error
      reply.log.error(line, 'request errored')
    } else if (route !== undefined && this.#quiet.has(route)) {
      reply.log.debug(line, 'request completed')
    } else {
      reply.log.info(line, 'request completed')
    }
  }

  #mcpFields (request: FastifyRequest, reply: FastifyReply): Record<string, unknown> {
    const answer = (request as unknown as WithAnswer)[MCP_ANSWER]
    const body = request.body as { method?: unknown } | undefined
    const session = request.headers['mcp-session-id'] ?? reply.getHeader('mcp-session-id')
    return {
      method: answer?.method ?? (typeof body?.method === 'string' ? (MCP_METHODS.has(body.method) ? body.method : 'unknown') : undefined),
      tool: answer?.tool,
      session: typeof session === 'string' ? session.slice(0, 8) : undefined,
      subject: request.auth?.subject,
      // Without an answer from the transport the request was refused before it (auth, origin, session, rate limit, bad input).
      outcome: answer?.outcome ?? (reply.statusCode < 400 ? 'ok' : 'refused'),
      ...(answer?.errorCode !== undefined && { errorCode: answer.errorCode })
    }
  }
}

/** Query parameters whose values are credentials (Alpha Vantage's `apikey`, `access_token`, `client_secret` …). */
const SECRET_PARAMETER = /key|token|secret|password|passwd|auth|sig|code/i

/** A URL fit for a trace or a log: credentials in it (user info, secret-looking query values) replaced. */
export function redactedUrl (url: URL): string {
  const copy = new URL(url.href)
  if (copy.username !== '' || copy.password !== '') {
    copy.username = 'REDACTED'
    copy.password = ''
  }
  for (const name of new Set(copy.searchParams.keys())) {
    if (SECRET_PARAMETER.test(name)) copy.searchParams.set(name, 'REDACTED')
  }
  return copy.href
}
