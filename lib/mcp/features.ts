import type { FastifyInstance } from 'fastify'
import type { CompleteResult } from '@modelcontextprotocol/sdk/types.js'
import { RpcError, RpcFailure, type DispatchScope, type McpProtocol } from './protocol.js'
import { paginate } from './pagination.js'
import { PromptRegistry, type PromptDefinition, type PromptHandler } from './prompts.js'
import {
  ResourceNotFoundError, ResourceRegistry, uriParam,
  type ResourceDefinition, type ResourceReader, type ResourceTemplateDefinition, type ResourceTemplateReader
} from './resources.js'
import { MAX_ARGUMENT_LENGTH, completionResult, stringArguments, type CompletionFunction } from './completion.js'
import {
  MemorySubscriptionStore, RedisSubscriptionStore, SubscriptionLimitError, type SubscriptionStore
} from './subscriptions.js'
import type { RedisLink } from './redis-session-store.js'
import type { SessionEndReason } from './session-store.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Registers an MCP prompt (prompts/list, prompts/get), shared by every session. Call it from any plugin registered after `mcp`. */
    mcpPrompt: (definition: PromptDefinition, handler: PromptHandler) => void
    /** Registers an MCP resource with a fixed URI (resources/list, resources/read). */
    mcpResource: (definition: ResourceDefinition, reader: ResourceReader) => void
    /** Registers an RFC 6570 resource template (resources/templates/list); resources/read of a matching URI calls its reader. */
    mcpResourceTemplate: (definition: ResourceTemplateDefinition, reader: ResourceTemplateReader) => void
    /**
     * Tells every session subscribed to `uri` that it changed
     * (notifications/resources/updated), wherever the session's stream is.
     * Never rejects: a failure is logged.
     */
    mcpResourceUpdated: (uri: string) => Promise<void>
  }
}

export interface McpFeaturesOptions {
  /** Items per page of prompts/list, resources/list and resources/templates/list. */
  pageSize: number
  /** Without sessions there is nothing to subscribe with: `subscribe` is not offered. */
  stateless: boolean
  /** Subscriptions shared by every replica. */
  redis?: RedisLink
  /** The session idle TTL: how long a session's subscription list outlives its last subscribe in Redis. */
  sessionIdleTtlMs: number
}

export interface McpFeatures {
  /** The transport calls this for every session that ends (subscriptions end with it). */
  sessionEnded: (sessionId: string, reason: SessionEndReason) => void
}

function refString (value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '' || value.length > MAX_ARGUMENT_LENGTH) {
    throw new RpcFailure(RpcError.InvalidParams, `Invalid params: ${what} must be a non-empty string of at most ${MAX_ARGUMENT_LENGTH} characters`)
  }
  return value
}

function objectParam (value: unknown, what: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new RpcFailure(RpcError.InvalidParams, `Invalid params: ${what} must be an object`)
  return value as Record<string, unknown>
}

/**
 * Prompts, resources (with templates and subscriptions) and completion on the
 * protocol's extension points: one call from the mcp plugin. Nothing here
 * runs on tools/call.
 */
export function installFeatures (fastify: FastifyInstance, protocol: McpProtocol, opts: McpFeaturesOptions): McpFeatures {
  const prompts = new PromptRegistry()
  const resources = new ResourceRegistry()
  const subscriptions: SubscriptionStore = opts.redis !== undefined
    ? new RedisSubscriptionStore(opts.redis, {
      ttlMs: opts.sessionIdleTtlMs * 4,
      /* c8 ignore next -- Redis failing at a session's end (timing): the next update prunes what is left */
      onError: err => fastify.log.warn({ err: { message: err.message } }, 'MCP subscriptions of an ended session not removed')
    })
    : new MemorySubscriptionStore()
  const { pageSize } = opts

  // A registration after the server is ready changes the lists clients hold (MCP prompts and resources "List Changed Notification").
  let ready = false
  fastify.addHook('onReady', async () => { ready = true })
  const listChanged = (method: string): void => { if (ready) fastify.mcpBroadcast({ method }) }

  protocol.setCapability('prompts', { listChanged: true })
  protocol.setCapability('resources', { subscribe: !opts.stateless, listChanged: true })
  protocol.setCapability('completions', {})

  protocol.setMethod('prompts/list', params => {
    const page = paginate(prompts.list(), params?.cursor, pageSize)
    return page.nextCursor === undefined ? { prompts: page.items } : { prompts: page.items, nextCursor: page.nextCursor }
  })
  protocol.setMethod('prompts/get', async (params, scope) => await prompts.render(params, scope))
  protocol.setMethod('resources/list', params => {
    const page = paginate(resources.list(), params?.cursor, pageSize)
    return page.nextCursor === undefined ? { resources: page.items } : { resources: page.items, nextCursor: page.nextCursor }
  })
  protocol.setMethod('resources/templates/list', params => {
    const page = paginate(resources.listTemplates(), params?.cursor, pageSize)
    return page.nextCursor === undefined ? { resourceTemplates: page.items } : { resourceTemplates: page.items, nextCursor: page.nextCursor }
  })
  protocol.setMethod('resources/read', async (params, scope) => await resources.read(uriParam(params), scope))

  function sessionOf (scope: DispatchScope): string {
    if (scope.sessionId === undefined) throw new RpcFailure(RpcError.InvalidRequest, 'Invalid Request: subscriptions need a session (this server runs stateless)')
    return scope.sessionId
  }
  protocol.setMethod('resources/subscribe', async (params, scope) => {
    const sessionId = sessionOf(scope)
    const uri = uriParam(params)
    // MCP resources "Error Handling": a URI this server does not serve is -32002.
    if (resources.resolve(uri) === undefined) throw new ResourceNotFoundError(uri)
    try {
      await subscriptions.subscribe(sessionId, uri)
    } catch (err) {
      if (err instanceof SubscriptionLimitError) throw new RpcFailure(RpcError.InvalidParams, `Invalid params: ${err.message}`)
      /* c8 ignore next 2 -- Redis failing between the session check and the subscribe (timing): the protocol answers -32603 */
      throw err
    }
    return {}
  })
  protocol.setMethod('resources/unsubscribe', async (params, scope) => {
    const sessionId = sessionOf(scope)
    await subscriptions.unsubscribe(sessionId, uriParam(params))
    return {}
  })

  protocol.setMethod('completion/complete', async (params, scope): Promise<CompleteResult> => {
    const ref = objectParam(params?.ref, 'ref')
    const argument = objectParam(params?.argument, 'argument')
    const name = refString(argument.name, 'argument.name')
    const value = argument.value
    if (typeof value !== 'string' || value.length > MAX_ARGUMENT_LENGTH) {
      throw new RpcFailure(RpcError.InvalidParams, `Invalid params: argument.value must be a string of at most ${MAX_ARGUMENT_LENGTH} characters`)
    }
    const context = params?.context === undefined ? undefined : objectParam(params.context, 'context')
    const others = stringArguments(context?.arguments, 'context.arguments')

    let complete: CompletionFunction | undefined
    if (ref.type === 'ref/prompt') {
      const prompt = prompts.lookup(ref.name)
      const declared = prompt.arguments.get(name)
      if (declared === undefined) throw new RpcFailure(RpcError.InvalidParams, `Invalid params: prompt ${prompt.prompt.name} has no argument ${name.slice(0, 64)}`)
      complete = declared.complete
    } else if (ref.type === 'ref/resource') {
      const uri = refString(ref.uri, 'ref.uri')
      const template = resources.template(uri)
      if (template === undefined) throw new RpcFailure(RpcError.InvalidParams, `Invalid params: no resource template ${uri.slice(0, 128)}`)
      if (!template.uriTemplate.variables.includes(name)) throw new RpcFailure(RpcError.InvalidParams, `Invalid params: template ${uri.slice(0, 128)} has no variable ${name.slice(0, 64)}`)
      complete = template.complete[name]
    } else {
      throw new RpcFailure(RpcError.InvalidParams, 'Invalid params: ref.type must be ref/prompt or ref/resource')
    }
    // An argument without a completion function has no suggestions (not an error: the client may ask of any argument).
    if (complete === undefined) return { completion: { values: [], total: 0, hasMore: false } }
    return completionResult(await complete(value, { auth: scope.auth, sessionId: scope.sessionId, log: scope.log, signal: scope.signal, arguments: others }))
  })

  fastify.decorate('mcpPrompt', function mcpPrompt (definition: PromptDefinition, handler: PromptHandler) {
    prompts.register(definition, handler)
    listChanged('notifications/prompts/list_changed')
  })
  fastify.decorate('mcpResource', function mcpResource (definition: ResourceDefinition, reader: ResourceReader) {
    resources.register(definition, reader)
    listChanged('notifications/resources/list_changed')
  })
  fastify.decorate('mcpResourceTemplate', function mcpResourceTemplate (definition: ResourceTemplateDefinition, reader: ResourceTemplateReader) {
    resources.registerTemplate(definition, reader)
    listChanged('notifications/resources/list_changed')
  })
  fastify.decorate('mcpResourceUpdated', async function mcpResourceUpdated (uri: string) {
    try {
      const sessions = await subscriptions.subscribers(uri)
      // MCP resources "Subscriptions": notifications/resources/updated names the URI; the client reads it again if it wants the contents.
      for (const sessionId of sessions) fastify.mcpNotify(sessionId, { method: 'notifications/resources/updated', params: { uri } })
      /* c8 ignore next 3 -- Redis unavailable while an update is raised: logged, the caller is not failed */
    } catch (err) {
      fastify.log.warn({ err: { message: (err as Error).message } }, 'MCP resource update not delivered')
    }
  })

  return { sessionEnded: (sessionId, reason) => subscriptions.sessionEnded(sessionId, reason) }
}
