import { request, type Dispatcher } from 'undici'

export interface BoundedJsonRequest {
  method: 'GET' | 'POST'
  headers: Record<string, string>
  body?: string
  /** Whole-call deadline (connect, headers and body). */
  timeoutMs: number
  /** Answers bigger than this are cut off: a hostile or broken server cannot fill memory. */
  maxBytes: number
  dispatcher?: Dispatcher
  /** Names the document in error messages ("JWKS", "introspection answer"). */
  what: string
}

/**
 * One HTTP exchange with an authorization server, bounded in time and size,
 * that yields parsed JSON or throws an Error saying what went wrong (never
 * with the request's credentials in it).
 */
export async function fetchBoundedJson (url: string, opts: BoundedJsonRequest): Promise<unknown> {
  const { what, maxBytes } = opts
  const res = await request(url, {
    method: opts.method,
    headers: opts.headers,
    body: opts.body,
    signal: AbortSignal.timeout(opts.timeoutMs),
    dispatcher: opts.dispatcher
  })
  if (res.statusCode !== 200) {
    await res.body.dump()
    throw new Error(`${what} endpoint answered HTTP ${res.statusCode}`)
  }
  if (Number(res.headers['content-length']) > maxBytes) {
    await res.body.dump()
    throw new Error(`${what} larger than ${maxBytes} bytes`)
  }
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of res.body) {
    size += (chunk as Buffer).length
    if (size > maxBytes) {
      res.body.destroy()
      throw new Error(`${what} larger than ${maxBytes} bytes`)
    }
    chunks.push(chunk as Buffer)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch {
    throw new Error(`${what} is not valid JSON`)
  }
}
