import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readFileSync } from 'node:fs'

export const newsFixture = JSON.parse(readFileSync(new URL('../fixtures/news-aapl.json', import.meta.url), 'utf8')) as {
  items: string
  feed: Array<Record<string, unknown>>
}

/** How the next answers go: each mode is one way the real Alpha Vantage behaves (or fails). */
export type UpstreamMode =
  | 'ok' | 'empty' | 'error-message' | 'information-limit' | 'information-demo' | 'information-premium' | 'note'
  | 'http-500' | 'http-503' | 'http-429' | 'http-404' | 'bad-json' | 'not-object' | 'no-feed' | 'slow' | 'hang' | 'reset'

export interface UpstreamHit {
  params: URLSearchParams
  headers: IncomingMessage['headers']
}

/** A fake Alpha Vantage on 127.0.0.1, serving fixtures and counting its hits. */
export class FakeAlphaVantage {
  server: Server
  url = ''
  hits: UpstreamHit[] = []
  mode: UpstreamMode = 'ok'
  /** Modes for the next requests, consumed in order before `mode` applies. */
  queue: UpstreamMode[] = []
  slowMs = 300
  /** Replaces the fixture body for `ok` answers. */
  body: unknown = newsFixture
  /** When set, the `ok` body for each request's parameters (a feed per ticker, say). */
  bodyFor: ((params: URLSearchParams) => unknown) | undefined

  private constructor () {
    this.server = createServer((req, res) => this.handle(req, res))
  }

  static async start (): Promise<FakeAlphaVantage> {
    const fake = new FakeAlphaVantage()
    await new Promise<void>(resolve => fake.server.listen(0, '127.0.0.1', resolve))
    fake.url = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}/query`
    fake.server.unref()
    return fake
  }

  async close (): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>(resolve => this.server.close(() => resolve()))
  }

  private send (res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(typeof body === 'string' ? body : JSON.stringify(body))
  }

  private handle (req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1')
    this.hits.push({ params: url.searchParams, headers: req.headers })
    const mode = this.queue.shift() ?? this.mode
    switch (mode) {
      case 'empty': return this.send(res, 200, { items: '0', sentiment_score_definition: '', relevance_score_definition: '', feed: [] })
      case 'error-message': return this.send(res, 200, { 'Error Message': 'Invalid API call. Please retry or visit the documentation for NEWS_SENTIMENT.' })
      case 'information-limit': return this.send(res, 200, { Information: 'We have detected your API key as ' + String(url.searchParams.get('apikey')) + ' and our standard API rate limit is 25 requests per day.' })
      case 'information-demo': return this.send(res, 200, { Information: 'The **demo** API key is for demo purposes only. Please claim your free API key.' })
      case 'information-premium': return this.send(res, 200, { Information: 'This is a premium endpoint.' })
      case 'note': return this.send(res, 200, { Note: 'Thank you for using Alpha Vantage! Our standard API call frequency is 5 calls per minute.' })
      case 'http-500': return this.send(res, 500, { error: 'internal' })
      case 'http-503': return this.send(res, 503, 'Service Unavailable')
      case 'http-429': return this.send(res, 429, { error: 'slow down' })
      case 'http-404': return this.send(res, 404, { error: 'not found' })
      case 'bad-json': return this.send(res, 200, '<html>oops</html>')
      case 'not-object': return this.send(res, 200, '[1,2,3]')
      case 'no-feed': return this.send(res, 200, { items: '0' })
      case 'slow':
        setTimeout(() => this.send(res, 200, this.body), this.slowMs).unref()
        return
      case 'hang': return // never answers: the client's timeout must fire
      case 'reset': req.socket.resetAndDestroy(); return // the connection reset (TCP RST) before any answer
      default: return this.send(res, 200, this.bodyFor === undefined ? this.body : this.bodyFor(url.searchParams))
    }
  }
}
