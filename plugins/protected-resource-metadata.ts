import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { slashVariants } from '../lib/http/route-paths.js'

export interface ProtectedResourceMetadataOptions {
  /**
   * The resource identifier, published exactly as given (RFC 9728 §2): the URL clients connect to.
   * @error protected-resource-metadata: "resource" must be an absolute http(s) URL
   */
  resource: string
  /**
   * Issuer URLs of the authorization servers clients get tokens from.
   * @error protected-resource-metadata: "authorizationServers" must list at least one authorization server (RFC 9728 §2; MCP authorization requires it)
   */
  authorizationServers: string[]
  /**
   * Scopes to publish in `scopes_supported`, first; every scope the mcp-auth
   * plugin sees required (its `requiredScopes`, route and tool scopes) is added when the server starts.
   * @default []
   */
  scopesSupported?: string[]
  /** Human-readable name of the resource (`resource_name`). */
  resourceName?: string
  /** URL of a page documenting the resource (`resource_documentation`). */
  resourceDocumentation?: string
  /** Other RFC 9728 §2 members to publish as they are. */
  extra?: Record<string, unknown>
  /**
   * Paths to serve the document at, besides the ones derived from `resource` and the root form.
   * @default []
   */
  paths?: string[]
}

export interface ProtectedResourceMetadata {
  resource: string
  authorization_servers: string[]
  bearer_methods_supported: string[]
  scopes_supported: string[]
  resource_name?: string
  resource_documentation?: string
  [member: string]: unknown
}

declare module 'fastify' {
  interface FastifyInstance {
    protectedResourceMetadata: ProtectedResourceMetadata
  }
}

export const WELL_KNOWN_PATH = '/.well-known/oauth-protected-resource'

/**
 * RFC 9728 §3.1: the document lives at the well-known prefix followed by the
 * resource's path (`/.well-known/oauth-protected-resource/mcp` for `…/mcp`).
 * The root form is served too, for clients that only try that one.
 */
export function metadataPaths (resource: string, extra: string[] = []): string[] {
  const { pathname } = new URL(resource)
  return [WELL_KNOWN_PATH, pathname === '/' ? WELL_KNOWN_PATH : `${WELL_KNOWN_PATH}${pathname}`, ...extra]
}

async function protectedResourceMetadataPlugin (fastify: FastifyInstance, opts: ProtectedResourceMetadataOptions): Promise<void> {
  if (typeof opts.resource !== 'string' || !/^https?:\/\/[^/]/.test(opts.resource)) throw new Error('protected-resource-metadata: "resource" must be an absolute http(s) URL')
  if (!Array.isArray(opts.authorizationServers) || opts.authorizationServers.length === 0) {
    throw new Error('protected-resource-metadata: "authorizationServers" must list at least one authorization server (RFC 9728 §2; MCP authorization requires it)')
  }
  const document: ProtectedResourceMetadata = {
    ...opts.extra,
    resource: opts.resource,
    authorization_servers: opts.authorizationServers,
    // MCP authorization "Token Requirements": tokens travel in the Authorization header only.
    bearer_methods_supported: ['header'],
    scopes_supported: [...opts.scopesSupported ?? []],
    ...(opts.resourceName !== undefined && { resource_name: opts.resourceName }),
    ...(opts.resourceDocumentation !== undefined && { resource_documentation: opts.resourceDocumentation })
  }
  let body = ''
  fastify.decorate('protectedResourceMetadata', document)
  // Scopes are known once every route and tool is registered: RFC 9728 §2
  // scopes_supported lists what clients may need to ask for, so step-up scopes too.
  fastify.addHook('onReady', async () => {
    if (fastify.hasDecorator('scopesInUse')) {
      for (const scope of fastify.scopesInUse) if (!document.scopes_supported.includes(scope)) document.scopes_supported.push(scope)
    }
    body = JSON.stringify(document)
  })

  // Public, cacheable and readable from any origin: browser-based clients fetch it before they hold a token.
  for (const url of slashVariants(fastify, metadataPaths(opts.resource, opts.paths))) {
    fastify.get(url, async (_request, reply) => {
      return reply
        .header('content-type', 'application/json; charset=utf-8')
        .header('cache-control', 'public, max-age=300')
        .header('access-control-allow-origin', '*')
        .send(body)
    })
  }
}

export default fp(protectedResourceMetadataPlugin, { name: 'protected-resource-metadata', fastify: '5.x' })
