import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import {
  CreateMessageResultSchema, CreateMessageResultWithToolsSchema, ElicitResultSchema,
  type ClientCapabilities, type CreateMessageRequest, type ElicitRequest
} from '@modelcontextprotocol/sdk/types.js'
import { ToolError } from './tools.js'
import type { RedisLink } from './redis-session-store.js'

export type { ClientCapabilities, CreateMessageRequest, CreateMessageResult, ElicitRequest, ElicitResult } from '@modelcontextprotocol/sdk/types.js'

/**
 * What the client declared at initialize, as bits: a session keeps one small
 * integer, not the client's object (a client chooses its size, and an idle
 * session must stay small). Only what this server acts on is kept.
 */
export const ClientCapabilityBit = {
  ElicitationForm: 1,
  ElicitationUrl: 2,
  Sampling: 4,
  SamplingTools: 8,
  SamplingContext: 16,
  Roots: 32,
  RootsListChanged: 64
} as const

function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

export function clientCapabilityBits (capabilities: unknown): number {
  if (!isObject(capabilities)) return 0
  let bits = 0
  const elicitation = capabilities.elicitation
  if (isObject(elicitation)) {
    // MCP 2025-11-25 client "Elicitation" capabilities: an empty object means form mode only (backwards compatibility).
    const form = isObject(elicitation.form)
    const url = isObject(elicitation.url)
    if (form || !url) bits |= ClientCapabilityBit.ElicitationForm
    if (url) bits |= ClientCapabilityBit.ElicitationUrl
  }
  const sampling = capabilities.sampling
  if (isObject(sampling)) {
    bits |= ClientCapabilityBit.Sampling
    if (isObject(sampling.tools)) bits |= ClientCapabilityBit.SamplingTools
    if (isObject(sampling.context)) bits |= ClientCapabilityBit.SamplingContext
  }
  const roots = capabilities.roots
  if (isObject(roots)) {
    bits |= ClientCapabilityBit.Roots
    if (roots.listChanged === true) bits |= ClientCapabilityBit.RootsListChanged
  }
  return bits
}

/** One frozen object per combination of bits, shared by every session that declared it. */
const capabilityObjects = new Map<number, ClientCapabilities>()

/** What the bits stand for, in the SDK's shape (`experimental` and unknown members are not kept). */
export function clientCapabilitiesOf (bits: number): ClientCapabilities {
  let caps = capabilityObjects.get(bits)
  if (caps === undefined) {
    const has = (bit: number): boolean => (bits & bit) !== 0
    caps = Object.freeze({
      ...((has(ClientCapabilityBit.ElicitationForm) || has(ClientCapabilityBit.ElicitationUrl)) && {
        elicitation: {
          ...(has(ClientCapabilityBit.ElicitationForm) && { form: {} }),
          ...(has(ClientCapabilityBit.ElicitationUrl) && { url: {} })
        }
      }),
      ...(has(ClientCapabilityBit.Sampling) && {
        sampling: {
          ...(has(ClientCapabilityBit.SamplingTools) && { tools: {} }),
          ...(has(ClientCapabilityBit.SamplingContext) && { context: {} })
        }
      }),
      ...(has(ClientCapabilityBit.Roots) && { roots: has(ClientCapabilityBit.RootsListChanged) ? { listChanged: true } : {} })
    }) as ClientCapabilities
    capabilityObjects.set(bits, caps)
  }
  return caps
}

/**
 * The client did not declare the capability a request needs (MCP client
 * "Elicitation", "Sampling": servers MUST NOT send such requests then). A
 * ToolError: a tool that lets it through answers the model with its message.
 */
export class ClientCapabilityError extends ToolError {
  constructor (readonly capability: string, message?: string) {
    super(message ?? `The client does not support ${capability}; ask the user directly in your answer instead.`)
    this.name = 'ClientCapabilityError'
  }
}

export type ClientRequestFailure = 'timeout' | 'cancelled' | 'session-ended' | 'client-error' | 'invalid-result' | 'unavailable'

/** A request to the client that got no usable answer; `reason` says why (a ToolError, as above). */
export class ClientRequestError extends ToolError {
  constructor (readonly reason: ClientRequestFailure, message: string, readonly code?: number, readonly data?: unknown) {
    super(message)
    this.name = 'ClientRequestError'
  }
}

export interface ClientRequestOptions {
  /** How long to wait for the client's answer (the plugin's `clientRequestTimeoutMs` by default). */
  timeoutMs?: number
}

/** The elicitation and sampling requests a tool may send through its context. */
export type ElicitParams = ElicitRequest['params']
export type CreateMessageParams = CreateMessageRequest['params']

/** What a call's scope offers a tool for reaching the client (the transport implements it). */
export interface ClientPeer {
  /** What the client declared at initialize (bits of ClientCapabilityBit). */
  readonly clientCapabilityBits: number
  /** Sends a request on the call's stream and waits for the client's answer, validated. */
  request: (method: ClientRequestMethod, params: Record<string, unknown>, timeoutMs: number | undefined) => Promise<Record<string, unknown>>
  /** Ends the call's SSE stream after its priming event; the client fetches the rest with GET and Last-Event-ID. */
  closeStream: () => void
}

export type ClientRequestMethod = 'elicitation/create' | 'sampling/createMessage'

/** A request's kind, as stored with it: how its answer is validated. */
export type PendingKind = 'elicit-form' | 'elicit-url' | 'sample' | 'sample-tools'

/** The id of a request this server sends: random, so that no client can guess another session's. */
export function newClientRequestId (): string {
  return `s-${randomBytes(12).toString('base64url')}`
}

/**
 * Checks a client's answer. Undefined when valid, else what is wrong with it.
 * MCP client "Elicitation": form content is a flat object of primitives (and
 * string arrays for multi-select, 2025-11-25); URL mode accepts carry none.
 */
export function invalidAnswer (kind: PendingKind, result: unknown): string | undefined {
  if (kind === 'elicit-form' || kind === 'elicit-url') {
    const parsed = ElicitResultSchema.safeParse(result)
    if (!parsed.success) return 'an elicitation result needs action accept, decline or cancel, and content (if any) a flat object of strings, numbers, booleans or string arrays'
    if (kind === 'elicit-form' && parsed.data.action === 'accept' && parsed.data.content === undefined) return 'an accepted form elicitation needs content'
    return undefined
  }
  const schema = kind === 'sample-tools' ? CreateMessageResultWithToolsSchema : CreateMessageResultSchema
  return schema.safeParse(result).success ? undefined : 'a sampling result needs role, content and model'
}

/** A client's answer, as the POST that carried it was judged. */
export type AnswerOutcome = { accepted: true } | { accepted: false, code: number, message: string }

export interface ClientAnswer {
  id: string | number
  result?: unknown
  error?: unknown
}

/** An answer as the waiting side receives it: checked, or what was wrong with it. */
interface Settled extends ClientAnswer {
  malformed?: string
}

interface Waiting {
  sessionId: string
  kind: PendingKind
  resolve: (result: Record<string, unknown>) => void
  reject: (err: ClientRequestError) => void
}

const UNKNOWN_ANSWER = -32600
const INVALID_ANSWER = -32602

function unknownAnswer (id: string | number): AnswerOutcome {
  // The same words for a request never sent, one of another session and one already answered: no oracle for ids.
  return { accepted: false, code: UNKNOWN_ANSWER, message: `Invalid Request: this session has no pending request with id ${JSON.stringify(id)}` }
}

/** Settles a waiting request with the client's answer (already checked). */
function settle (waiting: Waiting, answer: Settled): void {
  if (answer.malformed !== undefined) {
    waiting.reject(new ClientRequestError('invalid-result', `The client's answer was malformed: ${answer.malformed}`))
  } else if (answer.error !== undefined) {
    const error = answer.error as { code: number, message: string, data?: unknown }
    waiting.reject(new ClientRequestError('client-error', `The client refused the request: ${error.message}`, error.code, error.data))
  } else {
    waiting.resolve(answer.result as Record<string, unknown>)
  }
}

/** Judges an answer against its request's kind: what the holder receives, and what the POST is told. */
function judge (kind: PendingKind, answer: ClientAnswer): { outcome: AnswerOutcome, settled: Settled } {
  let wrong: string | undefined
  if (answer.error !== undefined) {
    const error = answer.error
    if (isObject(error) && Number.isInteger(error.code) && typeof error.message === 'string') {
      // Only the members JSON-RPC defines travel on (§5.1).
      return { outcome: { accepted: true }, settled: { id: answer.id, error: { code: error.code, message: error.message, data: error.data } } }
    }
    wrong = 'a JSON-RPC error needs an integer code and a string message'
  } else {
    wrong = invalidAnswer(kind, answer.result)
    if (wrong === undefined) return { outcome: { accepted: true }, settled: { id: answer.id, result: answer.result } }
  }
  // The request is answered (badly): the tool learns it at once rather than at its timeout.
  return { outcome: { accepted: false, code: INVALID_ANSWER, message: `Invalid params: ${wrong}` }, settled: { id: answer.id, malformed: wrong } }
}

/**
 * Requests from server to client waiting for their answer, wherever the
 * answer arrives. The waiting side lives on the replica that sent the
 * request (its tool call runs there); the answer is a POST that may reach any
 * replica.
 */
export interface ClientRequestRouter {
  /** Registers a request before it is sent; resolves once it may be sent (the shared store knows it). */
  expect: (id: string, sessionId: string, kind: PendingKind, timeoutMs: number, waiting: Pick<Waiting, 'resolve' | 'reject'>) => Promise<void>
  /** Forgets a request that will get no answer (timed out, cancelled); true if it was still waiting. */
  forget: (id: string) => boolean
  /** An answer POSTed in session `sessionId`: routed to its request, once. */
  answer: (sessionId: string, answer: ClientAnswer) => AnswerOutcome | Promise<AnswerOutcome>
  close: () => void
}

/** One replica: requests and answers meet in this map. */
export class MemoryClientRequestRouter implements ClientRequestRouter {
  readonly #waiting = new Map<string, Waiting>()

  async expect (id: string, sessionId: string, kind: PendingKind, _timeoutMs: number, waiting: Pick<Waiting, 'resolve' | 'reject'>): Promise<void> {
    this.#waiting.set(id, { sessionId, kind, ...waiting })
  }

  forget (id: string): boolean {
    return this.#waiting.delete(id)
  }

  answer (sessionId: string, answer: ClientAnswer): AnswerOutcome {
    const id = answer.id
    const waiting = typeof id === 'string' ? this.#waiting.get(id) : undefined
    if (waiting === undefined || waiting.sessionId !== sessionId) return unknownAnswer(id)
    this.#waiting.delete(id as string)
    const { outcome, settled } = judge(waiting.kind, answer)
    settle(waiting, settled)
    return outcome
  }

  close (): void {
    this.#waiting.clear()
  }
}

// <p>pending:<id> holds "<session> <kind>" while the request waits (PX: its
// timeout). Taking an answer is one atomic GET-compare-DEL: of two answers to
// one request (or two replicas receiving copies), exactly one wins; an answer
// from another session leaves the request waiting for its own.
const TAKE = `local v = redis.call('GET', KEYS[1])
if not v then return '' end
local space = string.find(v, ' ', 1, true)
if string.sub(v, 1, space - 1) ~= ARGV[1] then return '' end
redis.call('DEL', KEYS[1])
return string.sub(v, space + 1)
`

interface RouterCommands {
  mcpPendingTake: (key: string, sessionId: string) => Promise<string>
}

/**
 * Several replicas sharing Redis: the request is known in Redis (so that any
 * replica can tell a real answer from a forged or repeated one), and an
 * answer taken on another replica is published to the one that waits.
 */
export class RedisClientRequestRouter implements ClientRequestRouter {
  readonly #link: RedisLink
  readonly #client: Redis & RouterCommands
  readonly #channel: string
  readonly #waiting = new Map<string, Waiting>()
  readonly #onMessage = (channel: string, message: string): void => {
    if (channel !== this.#channel) return
    const settled = JSON.parse(message) as Settled
    const waiting = this.#waiting.get(settled.id as string)
    if (waiting === undefined) return
    this.#waiting.delete(settled.id as string)
    settle(waiting, settled)
  }

  constructor (link: RedisLink) {
    this.#link = link
    link.client.defineCommand('mcpPendingTake', { numberOfKeys: 1, lua: TAKE })
    this.#client = link.client as Redis & RouterCommands
    this.#channel = `${link.prefix}client-answers`
    link.subscriber.on('message', this.#onMessage)
    link.subscriber.subscribe(this.#channel).catch(() => {})
  }

  #key (id: string): string {
    return `${this.#link.prefix}pending:${id}`
  }

  async expect (id: string, sessionId: string, kind: PendingKind, timeoutMs: number, waiting: Pick<Waiting, 'resolve' | 'reject'>): Promise<void> {
    this.#waiting.set(id, { sessionId, kind, ...waiting })
    try {
      await this.#client.set(this.#key(id), `${sessionId} ${kind}`, 'PX', timeoutMs)
    } catch (err) {
      this.#waiting.delete(id)
      throw new ClientRequestError('unavailable', 'The request to the client could not be sent: shared storage is unavailable; try again shortly.', undefined, (err as Error).message)
    }
  }

  forget (id: string): boolean {
    // Best effort: the key expires with the request's timeout anyway.
    this.#client.del(this.#key(id)).catch(() => {})
    return this.#waiting.delete(id)
  }

  async answer (sessionId: string, answer: ClientAnswer): Promise<AnswerOutcome> {
    const id = answer.id
    if (typeof id !== 'string') return unknownAnswer(id)
    const kind = await this.#client.mcpPendingTake(this.#key(id), sessionId) as PendingKind | ''
    if (kind === '') return unknownAnswer(id)
    const { outcome, settled } = judge(kind, answer)
    const waiting = this.#waiting.get(id)
    if (waiting !== undefined) {
      this.#waiting.delete(id)
      settle(waiting, settled)
    } else {
      await this.#client.publish(this.#channel, JSON.stringify(settled))
    }
    return outcome
  }

  close (): void {
    this.#link.subscriber.removeListener('message', this.#onMessage)
    this.#waiting.clear()
  }
}
