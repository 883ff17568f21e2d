import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import { AlphaVantageClient, type AlphaVantageClientOptions } from '../lib/alpha-vantage.js'

export type AlphaVantagePluginOptions = AlphaVantageClientOptions & {
  /** Say at startup that the public demo key is in use. */
  usingDemoKey?: boolean
}

declare module 'fastify' {
  interface FastifyInstance {
    alphaVantage: AlphaVantageClient
  }
}

async function alphaVantagePlugin (fastify: FastifyInstance, opts: AlphaVantagePluginOptions): Promise<void> {
  if (typeof opts.apiKey !== 'string' || opts.apiKey === '') throw new Error('alpha-vantage: "apiKey" is required')
  const client = new AlphaVantageClient(opts)
  if (opts.usingDemoKey === true) {
    fastify.log.warn('ALPHA_VANTAGE_API_KEY is not set: using Alpha Vantage\'s public "demo" key, which only serves the documented example (ticker AAPL)')
  }
  fastify.decorate('alphaVantage', client)
  fastify.addHook('onClose', async () => { await client.close() })
}

export default fp(alphaVantagePlugin, { name: 'alpha-vantage', fastify: '5.x' })
