import type { GetPromptResult, Icon, Prompt } from '@modelcontextprotocol/sdk/types.js'
import { RpcError, RpcFailure } from './protocol.js'
import { stringArguments, type CompletionFunction, type McpRequestContext } from './completion.js'
import { checkIcons } from './tools.js'

export type { GetPromptResult, Icon, Prompt } from '@modelcontextprotocol/sdk/types.js'

export interface PromptArgumentDefinition {
  name: string
  title?: string
  description?: string
  /** prompts/get without it is -32602 (MCP prompts "Error Handling"). */
  required?: boolean
  /** Suggests values for completion/complete on `ref/prompt`. */
  complete?: CompletionFunction
}

export interface PromptDefinition {
  /** 1–128 characters of A–Z a–z 0–9 _ - . (as tool names). */
  name: string
  title?: string
  description?: string
  icons?: Icon[]
  arguments?: PromptArgumentDefinition[]
}

/** Builds the prompt's messages from its arguments (every declared required one is present; all are strings). */
export type PromptHandler = (args: Record<string, string>, ctx: McpRequestContext) => GetPromptResult | Promise<GetPromptResult>

export interface RegisteredPrompt {
  /** As prompts/list shows it. */
  readonly prompt: Prompt
  readonly arguments: ReadonlyMap<string, PromptArgumentDefinition>
  readonly handler: PromptHandler
}

const NAME = /^[A-Za-z0-9_.-]{1,128}$/

/** The prompt registry: one per server, shared by every session; prompts are listed in registration order. */
export class PromptRegistry {
  readonly #prompts = new Map<string, RegisteredPrompt>()
  #list: Prompt[] | undefined

  register (def: PromptDefinition, handler: PromptHandler): void {
    if (def === null || typeof def !== 'object') throw new Error('mcp: a prompt needs a definition object')
    if (typeof def.name !== 'string' || !NAME.test(def.name)) {
      throw new Error(`mcp: prompt name ${JSON.stringify(def.name)} is invalid (1-128 characters of A-Z a-z 0-9 _ - .)`)
    }
    if (this.#prompts.has(def.name)) throw new Error(`mcp: prompt "${def.name}" is already registered`)
    if (typeof handler !== 'function') throw new Error(`mcp: prompt "${def.name}" needs a handler function`)
    const icons = checkIcons(def.icons, `prompt "${def.name}"`)
    const args = new Map<string, PromptArgumentDefinition>()
    for (const arg of def.arguments ?? []) {
      if (typeof arg?.name !== 'string' || arg.name === '') throw new Error(`mcp: prompt "${def.name}" has an argument without a name`)
      if (args.has(arg.name)) throw new Error(`mcp: prompt "${def.name}" declares argument "${arg.name}" twice`)
      if (arg.complete !== undefined && typeof arg.complete !== 'function') throw new Error(`mcp: prompt "${def.name}" argument "${arg.name}": complete must be a function`)
      args.set(arg.name, arg)
    }
    const prompt: Prompt = {
      name: def.name,
      ...(def.title !== undefined && { title: def.title }),
      ...(def.description !== undefined && { description: def.description }),
      ...(icons !== undefined && { icons }),
      ...(args.size > 0 && {
        arguments: [...args.values()].map(a => ({
          name: a.name,
          ...(a.title !== undefined && { title: a.title }),
          ...(a.description !== undefined && { description: a.description }),
          ...(a.required === true && { required: true })
        }))
      })
    }
    this.#prompts.set(def.name, { prompt, arguments: args, handler })
    this.#list = undefined
  }

  get size (): number {
    return this.#prompts.size
  }

  /** Every prompt, as prompts/list shows them; built once per change of the registry. */
  list (): readonly Prompt[] {
    this.#list ??= [...this.#prompts.values()].map(p => p.prompt)
    return this.#list
  }

  /** The registered prompt, or -32602 (MCP prompts "Error Handling": invalid prompt name). */
  lookup (name: unknown): RegisteredPrompt {
    if (typeof name !== 'string') throw new RpcFailure(RpcError.InvalidParams, 'Invalid params: a prompt name (string) is required')
    const prompt = this.#prompts.get(name)
    if (prompt === undefined) throw new RpcFailure(RpcError.InvalidParams, `Unknown prompt: ${name.slice(0, 128)}`)
    return prompt
  }

  /** prompts/get: checks the arguments against the declaration, then runs the handler. */
  async render (params: Record<string, unknown> | undefined, ctx: McpRequestContext): Promise<GetPromptResult> {
    const prompt = this.lookup(params?.name)
    const args = stringArguments(params?.arguments, 'arguments')
    for (const name of Object.keys(args)) {
      if (!prompt.arguments.has(name)) throw new RpcFailure(RpcError.InvalidParams, `Invalid params: prompt ${prompt.prompt.name} has no argument ${name.slice(0, 64)}`)
    }
    for (const arg of prompt.arguments.values()) {
      if (arg.required === true && (args[arg.name] === undefined || args[arg.name]?.trim() === '')) {
        throw new RpcFailure(RpcError.InvalidParams, `Invalid params: prompt ${prompt.prompt.name} needs argument ${arg.name}`)
      }
    }
    return await prompt.handler(args, ctx)
  }
}
