import { z } from 'zod'
import type { CallToolResult, ToolAnnotations, Tool } from '@modelcontextprotocol/sdk/types.js'
import type { FastifyBaseLogger } from 'fastify'
import type { AuthContext } from '../auth/access-token-verifier.js'

export type { CallToolResult, ToolAnnotations } from '@modelcontextprotocol/sdk/types.js'

export type ObjectSchema = z.ZodType<Record<string, unknown>>

export interface ToolDefinition<I extends ObjectSchema = ObjectSchema, O extends ObjectSchema = ObjectSchema> {
  /** 1–128 characters of A–Z a–z 0–9 _ - . (MCP 2025-11-25, tools "Tool Names"). */
  name: string
  title?: string
  /** Written for a model choosing between tools. */
  description: string
  inputSchema: I
  /** When given, every successful result must carry `structuredContent` that matches it. */
  outputSchema?: O
  annotations?: ToolAnnotations
}

export interface ToolContext {
  /** The verified caller (null only where a developer registers the transport without auth). */
  auth: AuthContext | null
  /** Aborted when the client cancels the request, the session ends or the server shuts down. */
  signal: AbortSignal
  sessionId: string | undefined
  log: FastifyBaseLogger
  /**
   * Reports progress to the client when it asked for it (a `progressToken`):
   * the answer then streams as SSE. A no-op otherwise.
   */
  sendProgress: (progress: number, total?: number, message?: string) => void
}

export type ToolResult<O extends ObjectSchema> = CallToolResult & { structuredContent?: z.infer<O> }

export type ToolHandler<I extends ObjectSchema, O extends ObjectSchema> =
  (args: z.infer<I>, ctx: ToolContext) => Promise<ToolResult<O>> | ToolResult<O>

/** An error whose message is meant for the model: it becomes an `isError` result as it is. */
export class ToolError extends Error {
  constructor (message: string, readonly details?: Record<string, unknown>) {
    super(message)
    this.name = 'ToolError'
  }
}

export interface RegisteredTool {
  definition: Tool
  inputSchema: ObjectSchema
  outputSchema: ObjectSchema | undefined
  handler: ToolHandler<ObjectSchema, ObjectSchema>
}

const TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/

/**
 * zod writes every `.int()` with ±(2^53 − 1) bounds: noise in every
 * tools/list answer a client (and a model's context) reads. Drop exactly those.
 */
function withoutSafeIntegerBounds (node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutSafeIntegerBounds)
  if (node === null || typeof node !== 'object') return node
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(node)) {
    if ((key === 'minimum' && value === Number.MIN_SAFE_INTEGER) || (key === 'maximum' && value === Number.MAX_SAFE_INTEGER)) continue
    out[key] = withoutSafeIntegerBounds(value)
  }
  return out
}

function jsonSchemaOf (schema: ObjectSchema, io: 'input' | 'output', what: string): Tool['inputSchema'] {
  let json: Record<string, unknown>
  try {
    json = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>
  } catch (err) {
    throw new Error(`mcp: ${what} cannot be expressed as JSON Schema: ${(err as Error).message}`)
  }
  if (json.type !== 'object') throw new Error(`mcp: ${what} must be an object schema (MCP tools take and return JSON objects)`)
  // Clients validate with their own JSON Schema engine; a `$schema` naming a
  // dialect they do not bundle makes them reject the tool (2020-12 is the default dialect anyway).
  delete json.$schema
  return withoutSafeIntegerBounds(json) as Tool['inputSchema']
}

/** The tool registry: one per server, shared by every session. */
export class ToolRegistry {
  readonly #tools = new Map<string, RegisteredTool>()
  #listResult: { tools: Tool[] } | undefined

  register<I extends ObjectSchema, O extends ObjectSchema>(def: ToolDefinition<I, O>, handler: ToolHandler<I, O>): void {
    if (def === null || typeof def !== 'object') throw new Error('mcp: a tool needs a definition object')
    if (typeof def.name !== 'string' || !TOOL_NAME.test(def.name)) {
      throw new Error(`mcp: tool name ${JSON.stringify(def.name)} is invalid (1-128 characters of A-Z a-z 0-9 _ - .)`)
    }
    if (this.#tools.has(def.name)) throw new Error(`mcp: tool "${def.name}" is already registered`)
    if (typeof def.description !== 'string' || def.description.trim() === '') throw new Error(`mcp: tool "${def.name}" needs a description`)
    if (!(def.inputSchema instanceof z.ZodType)) throw new Error(`mcp: tool "${def.name}" needs a zod inputSchema`)
    if (def.outputSchema !== undefined && !(def.outputSchema instanceof z.ZodType)) throw new Error(`mcp: tool "${def.name}" outputSchema must be a zod schema`)
    if (typeof handler !== 'function') throw new Error(`mcp: tool "${def.name}" needs a handler function`)

    const definition: Tool = {
      name: def.name,
      ...(def.title !== undefined && { title: def.title }),
      description: def.description,
      inputSchema: jsonSchemaOf(def.inputSchema, 'input', `tool "${def.name}" inputSchema`),
      ...(def.outputSchema !== undefined && { outputSchema: jsonSchemaOf(def.outputSchema, 'output', `tool "${def.name}" outputSchema`) }),
      ...(def.annotations !== undefined && { annotations: def.annotations })
    }
    this.#tools.set(def.name, {
      definition,
      inputSchema: def.inputSchema,
      outputSchema: def.outputSchema,
      handler: handler as unknown as ToolHandler<ObjectSchema, ObjectSchema>
    })
    this.#listResult = undefined
  }

  get (name: string): RegisteredTool | undefined {
    return this.#tools.get(name)
  }

  get size (): number {
    return this.#tools.size
  }

  /** The tools/list result, built once and reused until the registry changes. */
  list (): { tools: Tool[] } {
    this.#listResult ??= { tools: [...this.#tools.values()].map(t => t.definition) }
    return this.#listResult
  }
}
