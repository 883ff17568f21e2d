import type { Server } from 'node:http'
import Fastify, { type FastifyHttpOptions, type FastifyInstance, type LightMyRequestResponse } from 'fastify'
import fp from 'fastify-plugin'
import type { Test } from 'tap'
import app, { options, type AppOptions } from '../../app.js'
import { LocalIssuer } from './issuer.js'
import { FakeAlphaVantage } from './fake-alpha-vantage.js'

export const RESOURCE = 'http://localhost:10000/mcp'
export const API_KEY = 'TESTKEY-0123456789-never-shown'

export interface TestContext {
  app: FastifyInstance
  issuer: LocalIssuer
  upstream: FakeAlphaVantage
  /** A valid token for the app (ScaleKit-shaped claims). */
  token: string
  logs: string[]
}

export interface BuildAppOptions {
  issuer?: LocalIssuer
  upstream?: FakeAlphaVantage
  /**
   * Register the root plugin unencapsulated (fastify-cli's `skipOverride`), so
   * that tests reach its decorators (`app.jwksCache`, `app.devIssuer` …).
   */
  skipOverride?: boolean
  /** Server options over app.ts's own (as REQUEST_TIMEOUT_MS … would set them for `fastify start`). */
  server?: FastifyHttpOptions<Server>
  /** Passed to the root plugin (an in-memory span exporter for the tracing tests). */
  appOptions?: Omit<AppOptions, 'env'>
}

/**
 * Builds the app exactly as production does (the root plugin with its server
 * options), against a local issuer and a fake Alpha Vantage, with the logs
 * captured; everything closes when the test ends.
 */
export async function buildApp (t: Test, env: Record<string, string> = {}, opts: BuildAppOptions = {}): Promise<TestContext> {
  const issuer = opts.issuer ?? await LocalIssuer.start()
  const upstream = opts.upstream ?? await FakeAlphaVantage.start()
  issuer.audience = [RESOURCE]
  const logs: string[] = []
  const fastify = Fastify({
    ...options,
    ...opts.server,
    logger: {
      ...(options.logger as object),
      level: 'debug',
      stream: { write: (line: string) => { logs.push(line) } }
    }
  })
  await fastify.register(opts.skipOverride === true ? fp(app) : app, {
    ...opts.appOptions,
    env: {
      ...issuer.scalekitEnv(RESOURCE),
      ALPHA_VANTAGE_API_KEY: API_KEY,
      ALPHA_VANTAGE_BASE_URL: upstream.url,
      ALPHA_VANTAGE_TIMEOUT_MS: '1000',
      // Unpaced, no per-subject share: a test makes many calls in a second as
      // one subject. The tests of the pace and the share set their own.
      ALPHA_VANTAGE_CALLS_PER_MINUTE: '0',
      ALPHA_VANTAGE_SUBJECT_DAILY_SHARE: '1',
      // A loaded CI machine lags its event loop for seconds: overload refusals would fail unrelated tests (test/plugins/overload.test.ts turns them on).
      OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0',
      ...env
    }
  })
  t.teardown(async () => {
    await fastify.close()
    if (opts.issuer === undefined) await issuer.close()
    if (opts.upstream === undefined) await upstream.close()
  })
  await fastify.ready()
  return { app: fastify, issuer, upstream, token: await issuer.token(), logs }
}

export const MCP_HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream'
}

export function initializeBody (protocolVersion = '2025-06-18', id: number | string = 1): Record<string, unknown> {
  return {
    jsonrpc: '2.0',
    id,
    method: 'initialize',
    params: { protocolVersion, capabilities: {}, clientInfo: { name: 'tap', version: '1.0.0' } }
  }
}

/** Opens a session over inject and returns its id. */
export async function openSession (ctx: TestContext, protocolVersion = '2025-06-18', token = ctx.token): Promise<string> {
  const res = await ctx.app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { ...MCP_HEADERS, authorization: `Bearer ${token}` },
    payload: initializeBody(protocolVersion)
  })
  const id = res.headers['mcp-session-id']
  if (typeof id !== 'string') throw new Error(`initialize failed: ${res.statusCode} ${res.body}`)
  await ctx.app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { ...MCP_HEADERS, authorization: `Bearer ${token}`, 'mcp-session-id': id, 'mcp-protocol-version': protocolVersion },
    payload: { jsonrpc: '2.0', method: 'notifications/initialized' }
  })
  return id
}

/** Calls a tool in an open session over inject. */
export async function callTool (ctx: TestContext, session: string, name: string, args: Record<string, unknown>, protocolVersion = '2025-06-18'): Promise<LightMyRequestResponse> {
  return await ctx.app.inject({
    method: 'POST',
    url: '/mcp',
    headers: { ...MCP_HEADERS, authorization: `Bearer ${ctx.token}`, 'mcp-session-id': session, 'mcp-protocol-version': protocolVersion },
    payload: { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name, arguments: args } }
  })
}
