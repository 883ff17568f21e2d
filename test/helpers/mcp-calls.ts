import { MCP_HEADERS, openSession, type TestContext } from './build-app.js'

export interface RpcAnswer {
  result?: any
  error?: { code: number, message: string, data?: unknown }
}

let nextId = 1000

/** A session on the app, and a function that sends one JSON-RPC request in it over inject. */
export async function rpcCaller (ctx: TestContext, protocolVersion = '2025-06-18'): Promise<(method: string, params?: unknown) => Promise<RpcAnswer>> {
  const session = await openSession(ctx, protocolVersion)
  return async (method, params) => {
    const res = await ctx.app.inject({
      method: 'POST',
      url: '/mcp',
      headers: { ...MCP_HEADERS, authorization: `Bearer ${ctx.token}`, 'mcp-session-id': session, 'mcp-protocol-version': protocolVersion },
      payload: { jsonrpc: '2.0', id: nextId++, method, ...(params !== undefined && { params }) }
    })
    if (res.statusCode !== 200) throw new Error(`${method}: HTTP ${res.statusCode} ${res.body}`)
    return res.json()
  }
}
