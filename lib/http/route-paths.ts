import type { FastifyInstance } from 'fastify'

/**
 * The paths to register so that `path` answers with and without a trailing
 * slash (clients copy resource identifiers both ways), whatever the host
 * app's `ignoreTrailingSlash` setting: with it on, one registration serves both.
 */
export function slashVariants (fastify: FastifyInstance, paths: string[]): string[] {
  const config = fastify.initialConfig as { routerOptions?: { ignoreTrailingSlash?: boolean }, ignoreTrailingSlash?: boolean }
  const ignoring = config.routerOptions?.ignoreTrailingSlash === true || config.ignoreTrailingSlash === true
  const out = new Set<string>()
  for (const path of paths) {
    const bare = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path
    out.add(bare)
    if (!ignoring && bare !== '/') out.add(`${bare}/`)
  }
  return [...out]
}
