import type { CompleteResult } from '@modelcontextprotocol/sdk/types.js'
import type { FastifyBaseLogger } from 'fastify'
import type { AuthContext } from '../auth/access-token-verifier.js'
import { RpcError, RpcFailure } from './protocol.js'

/** MCP completion "Completion Results": at most 100 values per answer. */
export const MAX_COMPLETION_VALUES = 100
/** The longest argument value (prompt argument, completion value, context argument) a request may carry, in UTF-16 code units. */
export const MAX_ARGUMENT_LENGTH = 4096
/** The most arguments a prompts/get or a completion context may carry. */
export const MAX_ARGUMENTS = 32

/** What a prompt handler, a resource reader or a completion function learns of its request. */
export interface McpRequestContext {
  /** The verified caller (null only where the transport runs without auth). */
  readonly auth: AuthContext | null
  readonly sessionId: string | undefined
  readonly log: FastifyBaseLogger
  /** Aborted when the client cancels the request, the session ends or the server shuts down. */
  readonly signal: AbortSignal
}

export interface CompletionContext extends McpRequestContext {
  /**
   * Values the client already chose for the other arguments of the same prompt
   * or template (`context.arguments` of completion/complete, 2025-06-18).
   */
  readonly arguments: Readonly<Record<string, string>>
}

/**
 * What a completion function returns: the values (the server keeps the first
 * 100 and sets `total` and `hasMore`), or the completion itself when the
 * function knows more than it returns (a `total` from an index, say).
 */
export type CompletionAnswer = readonly string[] | { values: readonly string[], total?: number, hasMore?: boolean }

/** Suggests values for one prompt argument or template variable from what the user has typed so far. */
export type CompletionFunction = (value: string, context: CompletionContext) => CompletionAnswer | Promise<CompletionAnswer>

/** The completion/complete result for what a completion function returned. */
export function completionResult (answer: CompletionAnswer): CompleteResult {
  if (Array.isArray(answer)) {
    const values = answer as readonly string[]
    return {
      completion: values.length > MAX_COMPLETION_VALUES
        ? { values: values.slice(0, MAX_COMPLETION_VALUES), total: values.length, hasMore: true }
        : { values: [...values], total: values.length, hasMore: false }
    }
  }
  const { values, total, hasMore } = answer as Exclude<CompletionAnswer, readonly string[]>
  const kept = values.slice(0, MAX_COMPLETION_VALUES)
  return {
    completion: {
      values: kept,
      ...(total !== undefined ? { total } : values.length > MAX_COMPLETION_VALUES && { total: values.length }),
      hasMore: hasMore ?? values.length > MAX_COMPLETION_VALUES
    }
  }
}

function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/**
 * A map of string arguments from a client (prompts/get `arguments`,
 * completion/complete `context.arguments`), bounded in count and length:
 * anything else is -32602 naming what is wrong.
 */
export function stringArguments (value: unknown, what: string): Record<string, string> {
  if (value === undefined) return {}
  if (!isObject(value)) throw new RpcFailure(RpcError.InvalidParams, `Invalid params: ${what} must be an object of strings`)
  const entries = Object.entries(value)
  if (entries.length > MAX_ARGUMENTS) throw new RpcFailure(RpcError.InvalidParams, `Invalid params: ${what} may hold at most ${MAX_ARGUMENTS} arguments`)
  const out: Record<string, string> = Object.create(null) as Record<string, string>
  for (const [name, v] of entries) {
    if (typeof v !== 'string') throw new RpcFailure(RpcError.InvalidParams, `Invalid params: ${what}.${name.slice(0, 64)} must be a string`)
    if (v.length > MAX_ARGUMENT_LENGTH) throw new RpcFailure(RpcError.InvalidParams, `Invalid params: ${what}.${name.slice(0, 64)} is longer than ${MAX_ARGUMENT_LENGTH} characters`)
    out[name] = v
  }
  return out
}
