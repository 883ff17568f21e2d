import neostandard from 'neostandard'

/**
 * The reusable part (what package.json exports) must stand without the
 * product: no news code, tools, routes, app or this app's config.
 */
const reusable = [
  'plugins/auth.ts', 'plugins/mcp.ts', 'plugins/protected-resource-metadata.ts', 'plugins/cors.ts',
  'plugins/rate-limit.ts', 'plugins/graceful-close.ts', 'lib/auth/**', 'lib/mcp/**', 'lib/http/**'
]

export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'coverage/**', '.tap/**', 'node_modules/**']
  }),
  {
    files: reusable,
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{
          regex: '(^|/)(news|tools|routes)/|(^|/)(app|config|alpha-vantage|dev-issuer|redis)\\.js$',
          message: 'Reusable plugins and lib/{auth,mcp,http} are published as a library: they may not import the product (lib/news, tools, routes, app, its config).'
        }]
      }]
    }
  }
]
