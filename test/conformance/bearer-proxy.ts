import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface BearerProxy {
  /** `http://127.0.0.1:<port>`: what the suite is pointed at. */
  url: string
  close: () => Promise<void>
}

/**
 * A pass-through HTTP proxy on 127.0.0.1 that adds `Authorization: Bearer <token>`
 * to every request, and with several targets sends the requests to each in
 * turn (replicas behind a load balancer without affinity). The conformance suite's clients send no credentials (its
 * server scenarios assume an open server), while this server is an OAuth 2.1
 * resource server: the proxy plays the part of an authorized client.
 *
 * Everything else passes untouched, Host and Origin included (the DNS-rebinding
 * scenario sends forged ones and must see the server's own answer), and bodies
 * stream both ways, so that SSE answers arrive event by event.
 */
export async function startBearerProxy (targets: string | string[], token: string): Promise<BearerProxy> {
  const upstreams = (Array.isArray(targets) ? targets : [targets]).map(target => new URL(target))
  let next = 0
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const upstream = upstreams[next++ % upstreams.length] as URL
    const headers = { ...req.headers, authorization: `Bearer ${token}` }
    const outgoing = httpRequest({
      host: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers
    }, answer => {
      res.writeHead(answer.statusCode ?? 502, answer.headers)
      // SSE: every chunk goes on at once (no buffering in between).
      res.flushHeaders()
      answer.pipe(res)
    })
    outgoing.on('error', () => {
      if (!res.headersSent) res.writeHead(502)
      res.end()
    })
    // The client hung up (a closed SSE stream): the server must see it too.
    res.on('close', () => { if (!res.writableFinished) outgoing.destroy() })
    req.pipe(outgoing)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}
