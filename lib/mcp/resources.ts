import type { Annotations, Icon, ReadResourceResult, Resource, ResourceTemplate } from '@modelcontextprotocol/sdk/types.js'
import { RpcError, RpcFailure } from './protocol.js'
import { UriTemplate } from './uri-template.js'
import type { CompletionFunction, McpRequestContext } from './completion.js'
import { checkIcons } from './tools.js'

export type { ReadResourceResult, Resource, ResourceTemplate } from '@modelcontextprotocol/sdk/types.js'

/** MCP resources "Error Handling": resource not found. */
export const RESOURCE_NOT_FOUND = -32002
/** The longest URI resources/read, subscribe and unsubscribe accept. */
export const MAX_URI_LENGTH = 2048

/** Thrown by a reader (or raised by the server) for a URI it does not serve: JSON-RPC -32002 with the URI in `data`. */
export class ResourceNotFoundError extends RpcFailure {
  constructor (uri: string) {
    super(RESOURCE_NOT_FOUND, 'Resource not found', { uri: uri.slice(0, MAX_URI_LENGTH) })
    this.name = 'ResourceNotFoundError'
  }
}

interface ResourceMetadata {
  /** Programmatic name (MCP 2025-06-18 BaseMetadata). */
  name: string
  title?: string
  description?: string
  mimeType?: string
  icons?: Icon[]
  annotations?: Annotations
}

export interface ResourceDefinition extends ResourceMetadata {
  /** The resource's absolute URI (RFC 3986), for example `news://methodology`. */
  uri: string
  /** Size in bytes, when known. */
  size?: number
}

export interface ResourceTemplateDefinition extends ResourceMetadata {
  /** RFC 6570 template: `{var}` (level 1) or `{+var}` (reserved), for example `news://sentiment/{ticker}`. */
  uriTemplate: string
  /** Completion functions by variable name, for completion/complete on `ref/resource`. */
  complete?: Record<string, CompletionFunction>
}

/** Reads a resource: its contents, each with its own `uri` (the one asked, for a single content). */
export type ResourceReader = (uri: string, ctx: McpRequestContext) => ReadResourceResult | Promise<ReadResourceResult>

/** Reads a resource produced by a template, with the template's variables taken from the URI (percent-decoded). */
export type ResourceTemplateReader = (uri: string, variables: Record<string, string>, ctx: McpRequestContext) => ReadResourceResult | Promise<ReadResourceResult>

export interface RegisteredTemplate {
  readonly template: ResourceTemplate
  readonly uriTemplate: UriTemplate
  readonly complete: Readonly<Record<string, CompletionFunction>>
  readonly reader: ResourceTemplateReader
}

/** What serves a URI: a plain resource, or a template with the variables it matched. */
type Resolved = { reader: ResourceReader, variables?: undefined, template?: undefined } | { reader?: undefined, variables: Record<string, string>, template: RegisteredTemplate }

/** Checks what resources and templates share; returns the icons as listed. */
function checkMetadata (def: ResourceMetadata, kind: string, id: string): Icon[] | undefined {
  if (typeof def.name !== 'string' || def.name === '') throw new Error(`mcp: ${kind} ${JSON.stringify(id)} needs a name`)
  return checkIcons(def.icons, `${kind} "${id}"`)
}

/** The resource registry: plain resources and templates, one per server, listed in registration order. */
export class ResourceRegistry {
  readonly #resources = new Map<string, { resource: Resource, reader: ResourceReader }>()
  readonly #templates = new Map<string, RegisteredTemplate>()
  #resourceList: Resource[] | undefined
  #templateList: ResourceTemplate[] | undefined

  register (def: ResourceDefinition, reader: ResourceReader): void {
    if (def === null || typeof def !== 'object') throw new Error('mcp: a resource needs a definition object')
    if (typeof def.uri !== 'string' || !URL.canParse(def.uri)) throw new Error(`mcp: resource URI ${JSON.stringify(def.uri)} is not an absolute URI`)
    if (def.uri.length > MAX_URI_LENGTH) throw new Error(`mcp: resource URI is longer than ${MAX_URI_LENGTH} characters`)
    const icons = checkMetadata(def, 'resource', def.uri)
    if (this.#resources.has(def.uri)) throw new Error(`mcp: resource "${def.uri}" is already registered`)
    if (typeof reader !== 'function') throw new Error(`mcp: resource "${def.uri}" needs a reader function`)
    const { uri, name, title, description, mimeType, annotations, size } = def
    const resource: Resource = {
      uri,
      name,
      ...(title !== undefined && { title }),
      ...(description !== undefined && { description }),
      ...(mimeType !== undefined && { mimeType }),
      ...(icons !== undefined && { icons }),
      ...(annotations !== undefined && { annotations }),
      ...(size !== undefined && { size })
    }
    this.#resources.set(uri, { resource, reader })
    this.#resourceList = undefined
  }

  registerTemplate (def: ResourceTemplateDefinition, reader: ResourceTemplateReader): void {
    if (def === null || typeof def !== 'object') throw new Error('mcp: a resource template needs a definition object')
    if (typeof def.uriTemplate !== 'string') throw new Error('mcp: a resource template needs a uriTemplate string')
    const icons = checkMetadata(def, 'resource template', def.uriTemplate)
    if (this.#templates.has(def.uriTemplate)) throw new Error(`mcp: resource template "${def.uriTemplate}" is already registered`)
    if (typeof reader !== 'function') throw new Error(`mcp: resource template "${def.uriTemplate}" needs a reader function`)
    const uriTemplate = new UriTemplate(def.uriTemplate)
    const complete = def.complete ?? {}
    for (const [variable, fn] of Object.entries(complete)) {
      if (!uriTemplate.variables.includes(variable)) throw new Error(`mcp: resource template "${def.uriTemplate}" has no variable {${variable}} to complete`)
      if (typeof fn !== 'function') throw new Error(`mcp: resource template "${def.uriTemplate}": complete.${variable} must be a function`)
    }
    const { name, title, description, mimeType, annotations } = def
    const template: ResourceTemplate = {
      uriTemplate: def.uriTemplate,
      name,
      ...(title !== undefined && { title }),
      ...(description !== undefined && { description }),
      ...(mimeType !== undefined && { mimeType }),
      ...(icons !== undefined && { icons }),
      ...(annotations !== undefined && { annotations })
    }
    this.#templates.set(def.uriTemplate, { template, uriTemplate, complete, reader })
    this.#templateList = undefined
  }

  /** Every plain resource, as resources/list shows them. */
  list (): readonly Resource[] {
    this.#resourceList ??= [...this.#resources.values()].map(r => r.resource)
    return this.#resourceList
  }

  /** Every template, as resources/templates/list shows them. */
  listTemplates (): readonly ResourceTemplate[] {
    this.#templateList ??= [...this.#templates.values()].map(t => t.template)
    return this.#templateList
  }

  /** The template registered under exactly this uriTemplate (completion's `ref/resource`). */
  template (uriTemplate: string): RegisteredTemplate | undefined {
    return this.#templates.get(uriTemplate)
  }

  /** What serves `uri`: a plain resource first, then the first template (in registration order) that matches it. */
  resolve (uri: string): Resolved | undefined {
    const plain = this.#resources.get(uri)
    if (plain !== undefined) return { reader: plain.reader }
    for (const template of this.#templates.values()) {
      const variables = template.uriTemplate.match(uri)
      if (variables !== undefined) return { variables, template }
    }
    return undefined
  }

  /** resources/read: the contents of `uri`, or -32002 when nothing serves it. */
  async read (uri: string, ctx: McpRequestContext): Promise<ReadResourceResult> {
    const resolved = this.resolve(uri)
    if (resolved === undefined) throw new ResourceNotFoundError(uri)
    return resolved.reader !== undefined
      ? await resolved.reader(uri, ctx)
      : await resolved.template.reader(uri, resolved.variables, ctx)
  }
}

/** The `uri` parameter of resources/read, subscribe and unsubscribe: a bounded string, else -32602. */
export function uriParam (params: Record<string, unknown> | undefined): string {
  const uri = params?.uri
  if (typeof uri !== 'string' || uri === '') throw new RpcFailure(RpcError.InvalidParams, 'Invalid params: uri (string) is required')
  if (uri.length > MAX_URI_LENGTH) throw new RpcFailure(RpcError.InvalidParams, `Invalid params: uri is longer than ${MAX_URI_LENGTH} characters`)
  return uri
}
