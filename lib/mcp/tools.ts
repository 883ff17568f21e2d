import { z } from 'zod'
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import { Ajv2020 } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import { IconSchema, type CallToolResult, type Icon, type ToolAnnotations, type Tool } from '@modelcontextprotocol/sdk/types.js'
import type { FastifyBaseLogger } from 'fastify'
import type { AuthContext } from '../auth/access-token-verifier.js'
import type { McpLogger } from './logging.js'
import type {
  ClientCapabilities, ClientRequestOptions, CreateMessageParams, CreateMessageResult, ElicitParams, ElicitResult
} from './client-requests.js'

export type { CallToolResult, Icon, ToolAnnotations } from '@modelcontextprotocol/sdk/types.js'

/** A zod 4 schema of an object (the app's own zod: zod is a peer dependency). */
export type ZodObjectSchema = z.ZodType<Record<string, unknown>>

/**
 * A JSON Schema of an object: what Fastify routes are written in. A TypeBox
 * `Type.Object(…)` is one too. Validated with ajv, compiled once when the
 * tool is registered: in draft-07 (the dialect Fastify's own validator uses)
 * unless `$schema` names 2020-12 (MCP 2025-11-25 "JSON Schema Usage"). The
 * schema reaches clients as it was given, `$schema` included.
 */
export interface JsonObjectSchema {
  type: 'object'
  // No index signature, so that TypeBox's interfaces are assignable; the
  // keywords below are listed for editors, any other keyword works too.
  properties?: object
  required?: readonly string[]
  additionalProperties?: boolean | object
  description?: string
  title?: string
  $schema?: string
  $id?: string
  $defs?: object
  definitions?: object
}

/** What a tool's `inputSchema` or `outputSchema` may be. */
export type ObjectSchema = ZodObjectSchema | JsonObjectSchema

/**
 * The value a schema lets through, as the handler sees it: zod's output type,
 * TypeBox's `Static<>` (read from the schema's `static` member, so that no
 * TypeBox import is needed), and a plain object for untyped JSON Schema.
 */
export type SchemaValue<S> =
  S extends z.ZodType ? z.output<S>
    : S extends { static: unknown } ? (S & { params: [] })['static']
      : Record<string, unknown>

export interface ToolDefinition<I extends ObjectSchema = ObjectSchema, O extends ObjectSchema = ObjectSchema> {
  /** 1–128 characters of A–Z a–z 0–9 _ - . (MCP 2025-11-25, tools "Tool Names"). */
  name: string
  /** A name for people (MCP 2025-06-18 "BaseMetadata"). */
  title?: string
  /** Icons a client may show (MCP 2025-11-25 "Icons"): https, http or data: URIs. */
  icons?: Icon[]
  /** Written for a model choosing between tools. */
  description: string
  inputSchema: I
  /** When given, every successful result must carry `structuredContent` that matches it. */
  outputSchema?: O
  annotations?: ToolAnnotations
  /**
   * OAuth scopes a token must carry to call this tool, besides the ones the
   * endpoint requires. A call without them is refused with 403
   * `insufficient_scope` so that the client can step up (MCP 2025-11-25
   * authorization "Scope Challenge Handling").
   */
  scopes?: string[]
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
  /**
   * MCP logging (server utilities "Logging"): each message goes to pino and,
   * at or above the level the session's client set, to the client as
   * `notifications/message` on this call's answer (which then streams as SSE).
   */
  mcpLog: McpLogger
  /** What the client declared at initialize (elicitation, sampling, roots); undefined outside a session. */
  clientCapabilities: ClientCapabilities | undefined
  /**
   * Asks the user through the client (`elicitation/create`, form or URL mode).
   * Rejects with ClientCapabilityError when the client did not declare that
   * mode, and with ClientRequestError on timeout, cancellation, the session's
   * end or a malformed answer (both are ToolErrors: unhandled, the model reads them).
   */
  elicit: (params: ElicitParams, options?: ClientRequestOptions) => Promise<ElicitResult>
  /** Asks the client's model (`sampling/createMessage`); rejects as `elicit` does. */
  createMessage: (params: CreateMessageParams, options?: ClientRequestOptions) => Promise<CreateMessageResult>
  /**
   * Ends this call's SSE stream after its priming event (MCP 2025-11-25
   * transports "Sending Messages to the Server": the server may close the
   * stream; the client polls with GET and Last-Event-ID). The call goes on,
   * and what it sends next is stored for the client's GET. A no-op for
   * clients of earlier versions and outside a session.
   */
  closeSseStream: () => void
}

export type ToolResult<O extends ObjectSchema> = CallToolResult & { structuredContent?: SchemaValue<O> }

export type ToolHandler<I extends ObjectSchema, O extends ObjectSchema> =
  (args: SchemaValue<I>, ctx: ToolContext) => Promise<ToolResult<O>> | ToolResult<O>

/** An error whose message is meant for the model: it becomes an `isError` result as it is. */
export class ToolError extends Error {
  constructor (message: string, readonly details?: Record<string, unknown>) {
    super(message)
    this.name = 'ToolError'
  }
}

/** A validation outcome, the same shape for zod and ajv: the value to use, or what is wrong with it. */
export type CheckResult = { success: true, data: Record<string, unknown> } | { success: false, issues: string }
export type Check = (value: unknown) => CheckResult

export interface RegisteredTool {
  definition: Tool
  checkInput: Check
  checkOutput: Check | undefined
  /** Scopes a caller needs for this tool, beyond the endpoint's (empty for most tools). */
  scopes: readonly string[]
  handler: ToolHandler<ObjectSchema, ObjectSchema>
}

const TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/
const DRAFT_2020_12 = /^https?:\/\/json-schema\.org\/draft\/2020-12\/schema#?$/
const DRAFT_07 = /^https?:\/\/json-schema\.org\/draft-07\/schema#?$/
/** MCP 2025-11-25 "Icons", security: a client fetches these, so only web and inline images (no file:, javascript:…). */
const ICON_SCHEMES = new Set(['https:', 'http:', 'data:'])

/**
 * Checks the `icons` of a tool, prompt or resource (MCP 2025-11-25 "Icons"):
 * undefined, or an array of `{ src, mimeType?, sizes?, theme? }` whose src is
 * an https, http or data: URI. Throws at registration otherwise.
 */
export function checkIcons (icons: unknown, what: string): Icon[] | undefined {
  if (icons === undefined) return undefined
  const fail = (why: string): never => { throw new Error(`mcp: ${what} icons ${why}`) }
  if (!Array.isArray(icons)) fail('must be an array of { src, mimeType?, sizes?, theme? }')
  return (icons as unknown[]).map((icon, i) => {
    const parsed = IconSchema.strict().safeParse(icon)
    if (!parsed.success) fail(`[${i}] must be { src, mimeType?, sizes?, theme? } (${parsed.error.issues.map(issue => issue.message).join('; ')})`)
    const src = (parsed.data as Icon).src
    let scheme: string | undefined
    try {
      scheme = new URL(src).protocol
    } catch {}
    if (scheme === undefined || !ICON_SCHEMES.has(scheme)) fail(`[${i}] src must be an https, http or data: URI`)
    return parsed.data as Icon
  })
}
/** RFC 6749 §3.3 scope-token: %x21 / %x23-5B / %x5D-7E. */
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]+$/
/** Distinct scope sets whose filtered tools/list is kept. */
const LIST_CACHE_SIZE = 64

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

/** zod 4 schemas carry `_zod`; duck-typed so that a schema from the app's copy of zod is recognised. */
function isZod (schema: unknown): schema is ZodObjectSchema {
  return typeof schema === 'object' && schema !== null && '_zod' in schema && typeof (schema as { safeParse?: unknown }).safeParse === 'function'
}

function formatZodIssues (issues: ReadonlyArray<{ path: PropertyKey[], message: string }>): string {
  return issues.map(i => `${i.path.length > 0 ? i.path.map(String).join('.') : '(arguments)'}: ${i.message}`).join('; ')
}

function formatAjvErrors (errors: ErrorObject[]): string {
  // ajv writes a message for every error unless built with `messages: false`, which this registry never does.
  return errors.map(e => `${e.instancePath === '' ? '(arguments)' : e.instancePath.slice(1).replace(/\//g, '.')}: ${e.message as string}`).join('; ')
}

/** The JSON Schema a client sees, and the check the server runs, for one schema of one tool. */
function compile (ajv: Validators, schema: unknown, io: 'input' | 'output', what: string): { json: Tool['inputSchema'], check: Check } {
  if (isZod(schema)) {
    let json: Record<string, unknown>
    try {
      json = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as Record<string, unknown>
    } catch (err) {
      throw new Error(`mcp: ${what} cannot be expressed as JSON Schema: ${(err as Error).message}`)
    }
    if (json.type !== 'object') throw new Error(`mcp: ${what} must be an object schema (MCP tools take and return JSON objects)`)
    // zod writes `$schema` on every schema it converts, naming its own target
    // (2020-12, MCP 2025-11-25's default dialect when `$schema` is absent):
    // dropping it changes nothing a client reads, and keeps tools/list small.
    // (A developer's own JSON Schema keeps its `$schema`: see below.)
    delete json.$schema
    return {
      json: withoutSafeIntegerBounds(json) as Tool['inputSchema'],
      check: value => {
        const parsed = schema.safeParse(value)
        return parsed.success ? { success: true, data: parsed.data } : { success: false, issues: formatZodIssues(parsed.error.issues) }
      }
    }
  }
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) {
    throw new Error(`mcp: ${what} must be a zod 4 schema or a JSON Schema object (TypeBox schemas are JSON Schema)`)
  }
  if ('_def' in schema && typeof (schema as { safeParse?: unknown }).safeParse === 'function') {
    throw new Error(`mcp: ${what} is a zod 3 schema; use zod 4 (import { z } from 'zod' with zod 4 installed)`)
  }
  if ((schema as { type?: unknown }).type !== 'object') throw new Error(`mcp: ${what} must be an object schema (MCP tools take and return JSON objects)`)
  // JSON.parse(JSON.stringify()) drops TypeBox's symbol-keyed metadata and anything that is not JSON.
  // The schema goes to clients untouched (SEP-1613: `$schema`, `$defs`, `additionalProperties` preserved).
  const json = JSON.parse(JSON.stringify(schema)) as Record<string, unknown>
  const dialect = json.$schema
  let validator: Ajv
  if (dialect === undefined || (typeof dialect === 'string' && DRAFT_07.test(dialect))) {
    validator = ajv.draft07
  } else if (typeof dialect === 'string' && DRAFT_2020_12.test(dialect)) {
    validator = ajv.draft2020
  } else {
    throw new Error(`mcp: ${what} names a JSON Schema dialect this server cannot validate (${JSON.stringify(dialect)}); use draft 2020-12 or draft-07`)
  }
  let validate: ValidateFunction
  try {
    // Without `$schema` for ajv: the dialect is chosen by the instance, and a
    // schema object is compiled once (ajv would also refuse the same $id twice).
    const { $schema: _dialect, ...body } = json
    validate = validator.compile(body)
  } catch (err) {
    throw new Error(`mcp: ${what} is not a valid JSON Schema: ${(err as Error).message}`)
  }
  return {
    json: json as Tool['inputSchema'],
    check: value => validate(value)
      ? { success: true, data: value as Record<string, unknown> }
      : { success: false, issues: formatAjvErrors(validate.errors as ErrorObject[]) }
  }
}

function checkScopes (scopes: unknown, name: string): readonly string[] {
  if (scopes === undefined) return []
  if (!Array.isArray(scopes) || !scopes.every(s => typeof s === 'string' && SCOPE_TOKEN.test(s))) {
    throw new Error(`mcp: tool "${name}" scopes must be an array of OAuth scope tokens (RFC 6749 §3.3: no spaces, quotes or backslashes)`)
  }
  return [...new Set(scopes as string[])]
}

interface Validators { draft07: Ajv, draft2020: Ajv }
const AJV_OPTIONS = { strict: false, useDefaults: true, allErrors: false, coerceTypes: false } as const

/** The tool registry: one per server, shared by every session. */
export class ToolRegistry {
  readonly #tools = new Map<string, RegisteredTool>()
  #listResult: { tools: Tool[] } | undefined
  /** Filtered tools/list results by the caller's granted scopes, while some tool needs scopes of its own. */
  readonly #listsByScopes = new Map<string, { tools: Tool[] }>()
  #scoped = false
  // One validator per dialect for every JSON Schema tool: schemas compile at registration, never per call.
  // useDefaults as Fastify does, so that `default` fills in missing arguments as with zod.
  readonly #ajv: Validators = {
    draft07: addFormats.default(new Ajv(AJV_OPTIONS)),
    draft2020: addFormats.default(new Ajv2020(AJV_OPTIONS)) as unknown as Ajv
  }

  register<I extends ObjectSchema, O extends ObjectSchema>(def: ToolDefinition<I, O>, handler: ToolHandler<I, O>): void {
    if (def === null || typeof def !== 'object') throw new Error('mcp: a tool needs a definition object')
    if (typeof def.name !== 'string' || !TOOL_NAME.test(def.name)) {
      throw new Error(`mcp: tool name ${JSON.stringify(def.name)} is invalid (1-128 characters of A-Z a-z 0-9 _ - .)`)
    }
    if (this.#tools.has(def.name)) throw new Error(`mcp: tool "${def.name}" is already registered`)
    if (typeof def.description !== 'string' || def.description.trim() === '') throw new Error(`mcp: tool "${def.name}" needs a description`)
    if (def.inputSchema === undefined) throw new Error(`mcp: tool "${def.name}" needs an inputSchema (zod 4, JSON Schema or TypeBox)`)
    if (typeof handler !== 'function') throw new Error(`mcp: tool "${def.name}" needs a handler function`)
    if (def.title !== undefined && (typeof def.title !== 'string' || def.title.trim() === '')) throw new Error(`mcp: tool "${def.name}" title must be a non-empty string`)
    const icons = checkIcons(def.icons, `tool "${def.name}"`)
    const scopes = checkScopes(def.scopes, def.name)

    const input = compile(this.#ajv, def.inputSchema, 'input', `tool "${def.name}" inputSchema`)
    const output = def.outputSchema === undefined ? undefined : compile(this.#ajv, def.outputSchema, 'output', `tool "${def.name}" outputSchema`)
    const definition: Tool = {
      name: def.name,
      ...(def.title !== undefined && { title: def.title }),
      description: def.description,
      ...(icons !== undefined && { icons }),
      inputSchema: input.json,
      ...(output !== undefined && { outputSchema: output.json }),
      ...(def.annotations !== undefined && { annotations: def.annotations })
    }
    this.#tools.set(def.name, {
      definition,
      checkInput: input.check,
      checkOutput: output?.check,
      scopes,
      handler: handler as unknown as ToolHandler<ObjectSchema, ObjectSchema>
    })
    this.#listResult = undefined
    this.#listsByScopes.clear()
    if (scopes.length > 0) this.#scoped = true
  }

  get (name: string): RegisteredTool | undefined {
    return this.#tools.get(name)
  }

  get size (): number {
    return this.#tools.size
  }

  /** Every scope some tool asks for (for the protected-resource metadata's `scopes_supported`). */
  scopes (): string[] {
    const all = new Set<string>()
    for (const tool of this.#tools.values()) for (const scope of tool.scopes) all.add(scope)
    return [...all]
  }

  /** The tools/list result, built once and reused until the registry changes. */
  list (): { tools: Tool[] } {
    this.#listResult ??= { tools: [...this.#tools.values()].map(t => t.definition) }
    return this.#listResult
  }

  /**
   * The tools a caller holding `granted` may call. Results are kept per scope
   * set (callers share a handful of them), so a listing allocates nothing
   * once its set has been seen.
   */
  listPermitted (granted: readonly string[]): { tools: Tool[] } {
    if (!this.#scoped) return this.list()
    const key = granted.join(' ')
    let result = this.#listsByScopes.get(key)
    if (result === undefined) {
      result = { tools: [...this.#tools.values()].filter(t => t.scopes.every(s => granted.includes(s))).map(t => t.definition) }
      if (this.#listsByScopes.size >= LIST_CACHE_SIZE) this.#listsByScopes.delete(this.#listsByScopes.keys().next().value as string)
      this.#listsByScopes.set(key, result)
    }
    return result
  }
}
