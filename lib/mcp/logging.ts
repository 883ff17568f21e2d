import type { FastifyBaseLogger } from 'fastify'
import type { LoggingLevel } from '@modelcontextprotocol/sdk/types.js'
import type { JsonRpcNotification } from './protocol.js'

export type { LoggingLevel } from '@modelcontextprotocol/sdk/types.js'

/** MCP server utilities "Logging": the RFC 5424 severities, least severe first (an index is a level). */
export const LOGGING_LEVELS: readonly LoggingLevel[] = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency']

const LEVEL_INDEX = new Map<string, number>(LOGGING_LEVELS.map((level, i) => [level, i]))

/** The index of a level name, or undefined for anything that is not one of the eight. */
export function loggingLevelIndex (level: unknown): number | undefined {
  return typeof level === 'string' ? LEVEL_INDEX.get(level) : undefined
}

/**
 * pino has six levels, MCP eight: notice goes to info, and the three above
 * error to fatal only for the two that mean "act now".
 */
export const PINO_FOR_LEVEL = ['debug', 'info', 'info', 'warn', 'error', 'error', 'fatal', 'fatal'] as const

/**
 * A tool's MCP logger: each message goes to pino (always) and, as
 * `notifications/message`, to the client when its level is at or above the
 * session's (MCP server utilities "Logging": the server SHOULD send only
 * messages at or above the level the client set).
 */
export interface McpLogger {
  log: (level: LoggingLevel, data: unknown, logger?: string) => void
  debug: (data: unknown, logger?: string) => void
  info: (data: unknown, logger?: string) => void
  notice: (data: unknown, logger?: string) => void
  warning: (data: unknown, logger?: string) => void
  error: (data: unknown, logger?: string) => void
  critical: (data: unknown, logger?: string) => void
  alert: (data: unknown, logger?: string) => void
  emergency: (data: unknown, logger?: string) => void
}

/** Where an McpLogger sends what passes the level: the call's stream, or the session's GET stream. */
export interface LogSink {
  /** The least severe level the client wants (an index into LOGGING_LEVELS). */
  readonly logLevel: number
  send: (notification: JsonRpcNotification) => void
}

/** The notification for one message (MCP server utilities "Logging", "Log Message Notifications"). */
export function logMessage (level: LoggingLevel, data: unknown, logger: string | undefined): JsonRpcNotification {
  return {
    jsonrpc: '2.0',
    method: 'notifications/message',
    params: logger === undefined ? { level, data } : { level, logger, data }
  }
}

/**
 * A class with its methods on the prototype: made only when a tool reads
 * `ctx.mcpLog`, and then one small object per call.
 */
export class SessionLogger implements McpLogger {
  constructor (private readonly pino: FastifyBaseLogger, private readonly sink: LogSink | undefined) {}

  log (level: LoggingLevel, data: unknown, logger?: string): void {
    const index = LEVEL_INDEX.get(level)
    if (index === undefined) throw new TypeError(`mcp: ${JSON.stringify(level)} is not an MCP logging level (${LOGGING_LEVELS.join(', ')})`)
    this.pino[PINO_FOR_LEVEL[index] as 'info']({ mcpLog: { level, ...(logger !== undefined && { logger }) }, data }, 'tool log')
    const sink = this.sink
    if (sink !== undefined && index >= sink.logLevel) sink.send(logMessage(level, data, logger))
  }

  debug (data: unknown, logger?: string): void { this.log('debug', data, logger) }
  info (data: unknown, logger?: string): void { this.log('info', data, logger) }
  notice (data: unknown, logger?: string): void { this.log('notice', data, logger) }
  warning (data: unknown, logger?: string): void { this.log('warning', data, logger) }
  error (data: unknown, logger?: string): void { this.log('error', data, logger) }
  critical (data: unknown, logger?: string): void { this.log('critical', data, logger) }
  alert (data: unknown, logger?: string): void { this.log('alert', data, logger) }
  emergency (data: unknown, logger?: string): void { this.log('emergency', data, logger) }
}
