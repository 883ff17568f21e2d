// Just enough of an MCP client over Streamable HTTP for the benchmark's setup
// and checks (answers come as JSON or as an SSE stream, depending on the server).
import { request } from 'undici'

export const PROTOCOL_VERSION = '2025-06-18'
export const TOOL_ARGUMENTS = { ticker: 'AAPL', limit: 5 }

export function initializeMessage (id = 1) {
  return { jsonrpc: '2.0', id, method: 'initialize', params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'bench', version: '1.0.0' } } }
}
export const initializedNotification = { jsonrpc: '2.0', method: 'notifications/initialized' }
export function toolsListMessage (id = 1) {
  return { jsonrpc: '2.0', id, method: 'tools/list', params: {} }
}
export function toolsCallMessage (id = 1) {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'get_news_sentiment', arguments: TOOL_ARGUMENTS } }
}

export function echoCallMessage (id = 1) {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'echo', arguments: { text: 'hello' } } }
}

export function mcpHeaders (token, session) {
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    authorization: `Bearer ${token}`
  }
  if (session !== undefined) {
    headers['mcp-protocol-version'] = session.protocolVersion
    if (session.id !== undefined) headers['mcp-session-id'] = session.id
  }
  return headers
}

/** The JSON-RPC message in a body: plain JSON, or the last `data:` line of an SSE stream. */
export function parseMessage (text, contentType = '') {
  if (!contentType.startsWith('text/event-stream')) return text === '' ? undefined : JSON.parse(text)
  const data = text.split('\n').filter(line => line.startsWith('data:')).map(line => line.slice(5).trim())
  return data.length === 0 ? undefined : JSON.parse(data[data.length - 1])
}

export async function post (url, headers, message, dispatcher) {
  const res = await request(url, { method: 'POST', headers, body: JSON.stringify(message), dispatcher })
  const text = await res.body.text()
  const contentType = String(res.headers['content-type'] ?? '')
  return { status: res.statusCode, headers: res.headers, message: parseMessage(text, contentType), text }
}

/** The session an initialize answer opened: its id (none from a stateless server) and the protocol version agreed. */
export function sessionOf (headers, result) {
  const id = headers['mcp-session-id']
  return { id: typeof id === 'string' ? id : undefined, protocolVersion: result?.protocolVersion ?? PROTOCOL_VERSION }
}

/** MCP transports "Session Management": a client that is done sends DELETE with its session id. */
export async function deleteSession (url, token, session, dispatcher) {
  const { 'content-type': _, ...headers } = mcpHeaders(token, session)
  const res = await request(url, { method: 'DELETE', headers, dispatcher })
  return { status: res.statusCode, text: await res.body.text() }
}

/** What a fresh client does first: initialize, then notifications/initialized. */
export async function openSession (url, token) {
  const init = await post(url, mcpHeaders(token), initializeMessage())
  if (init.status !== 200 || init.message?.result === undefined) throw new Error(`initialize failed: HTTP ${init.status} ${init.text.slice(0, 300)}`)
  const session = sessionOf(init.headers, init.message.result)
  const note = await post(url, mcpHeaders(token, session), initializedNotification)
  if (note.status >= 300) throw new Error(`notifications/initialized failed: HTTP ${note.status} ${note.text.slice(0, 300)}`)
  return session
}

/** One request that must succeed with a JSON-RPC result (and, for a tool, not an isError result). */
export async function expectResult (url, headers, message) {
  const res = await post(url, headers, message)
  const result = res.message?.result
  if (res.status !== 200 || result === undefined || result.isError === true) {
    throw new Error(`${message.method} failed: HTTP ${res.status} ${res.text.slice(0, 300)}`)
  }
  return result
}
