import { Pool, errors as undiciErrors } from 'undici'
import { easternToIso } from './eastern-time.js'

export { easternToIso } from './eastern-time.js'

/** What went wrong upstream, in terms a model (and an operator) can act on. */
export type UpstreamFailureKind = 'daily_limit' | 'rate_limited' | 'invalid_request' | 'premium_only' | 'demo_key' | 'unavailable' | 'bad_response'

export class AlphaVantageError extends Error {
  /** A daily-limit refusal because the caller used its own share, not the server's whole quota. */
  subjectShare = false

  /**
   * @param retryable a timeout or a 5xx: worth retrying at once. Never the
   *   200-with-a-message answers (`Information`, `Note`, `Error Message`):
   *   retrying those only spends quota.
   */
  constructor (readonly kind: UpstreamFailureKind, message: string, readonly retryable = false) {
    super(message)
    this.name = 'AlphaVantageError'
  }
}

export type SortOrder = 'LATEST' | 'EARLIEST' | 'RELEVANCE'

export interface NewsQuery {
  tickers?: string[]
  topics?: string[]
  /** Alpha Vantage's YYYYMMDDTHHMM. */
  timeFrom?: string
  timeTo?: string
  sort?: SortOrder
  /** How many articles to ask Alpha Vantage for (it caps at 1000). */
  limit?: number
}

export interface TickerSentiment {
  ticker: string
  relevance: number | null
  score: number | null
  label: string | null
}

export interface Article {
  title: string
  url: string
  summary: string
  source: string
  sourceDomain: string | null
  /** ISO 8601, UTC. */
  publishedAt: string | null
  authors: string[]
  overallSentimentScore: number | null
  overallSentimentLabel: string | null
  topics: Array<{ topic: string, relevance: number | null }>
  tickerSentiment: TickerSentiment[]
}

export interface NewsFeed {
  articles: Article[]
  /** Articles skipped because they were unusable (no title, say). */
  dropped: number
  /** Estimated memory the parsed feed keeps (what the cache's byte bound counts); see `retainedBytes`. */
  bytes: number
  /** Size of the upstream body. */
  upstreamBytes?: number
}

/*
 * What a parsed feed keeps in V8, estimated from above: the upstream body's
 * size says little (a 7.9 MiB body of tiny entries once held 35.8 MiB), so
 * count objects and strings. Figures for 64-bit V8 without pointer
 * compression (Node's default): an object's header and its fields, a
 * fraction-bearing number boxed on the heap, an array and its backing store,
 * a string's header and its characters at two bytes each (a one-byte string
 * costs less, so this leans high). test/lib/news/retained-size.test.ts checks
 * the estimate against the measured heap.
 */
const OBJECT = 48
const FIELD = 8
const NUMBER = 16
const ARRAY = 48
const STRING = 24

function stringBytes (s: string | null): number {
  return s === null ? 0 : STRING + 2 * s.length
}

/** The estimated heap a parsed article keeps. */
export function articleRetainedBytes (a: Article): number {
  let n = OBJECT + 11 * FIELD + NUMBER + stringBytes(a.title) + stringBytes(a.url) + stringBytes(a.summary) + stringBytes(a.source) +
    stringBytes(a.sourceDomain) + stringBytes(a.publishedAt) + stringBytes(a.overallSentimentLabel) +
    3 * ARRAY + FIELD * (a.authors.length + a.topics.length + a.tickerSentiment.length)
  for (const author of a.authors) n += stringBytes(author)
  for (const t of a.topics) n += OBJECT + 2 * FIELD + NUMBER + stringBytes(t.topic)
  for (const t of a.tickerSentiment) n += OBJECT + 4 * FIELD + 2 * NUMBER + stringBytes(t.ticker) + stringBytes(t.label)
  return n
}

/** The estimated heap a parsed feed keeps: what the cache counts against its byte bound. */
export function retainedBytes (articles: Article[]): number {
  let n = OBJECT + 3 * FIELD + ARRAY + FIELD * articles.length
  for (const a of articles) n += articleRetainedBytes(a)
  return n
}

export interface AlphaVantageClientOptions {
  baseUrl: string
  apiKey: string
  timeoutMs: number
  maxConnections: number
  /** Largest response body read (default 8 MiB; a 1000-article feed is about 2 MiB). */
  maxBytes?: number
}

/** Alpha Vantage writes numbers as strings ("0.343409"), sometimes as numbers, sometimes not at all. */
export function toNumber (value: unknown): number | null {
  if (typeof value === 'number') return Number.isFinite(value) ? value : null
  if (typeof value !== 'string' || value.trim() === '') return null
  const n = Number(value)
  return Number.isFinite(n) ? n : null
}

function text (value: unknown): string {
  return typeof value === 'string' ? value.trim() : ''
}

function parseArticle (raw: unknown): Article | null {
  if (raw === null || typeof raw !== 'object') return null
  const a = raw as Record<string, unknown>
  const title = text(a.title)
  if (title === '') return null
  const tickerSentiment: TickerSentiment[] = []
  if (Array.isArray(a.ticker_sentiment)) {
    for (const t of a.ticker_sentiment as Array<Record<string, unknown>>) {
      if (t === null || typeof t !== 'object' || typeof t.ticker !== 'string') continue
      tickerSentiment.push({
        ticker: t.ticker.toUpperCase(),
        relevance: toNumber(t.relevance_score),
        score: toNumber(t.ticker_sentiment_score),
        label: typeof t.ticker_sentiment_label === 'string' ? t.ticker_sentiment_label : null
      })
    }
  }
  const topics: Article['topics'] = []
  if (Array.isArray(a.topics)) {
    for (const t of a.topics as Array<Record<string, unknown>>) {
      if (t !== null && typeof t === 'object' && typeof t.topic === 'string') topics.push({ topic: t.topic, relevance: toNumber(t.relevance_score) })
    }
  }
  return {
    title,
    url: text(a.url),
    summary: text(a.summary),
    source: text(a.source) || text(a.source_domain) || 'unknown source',
    sourceDomain: text(a.source_domain) || null,
    publishedAt: easternToIso(a.time_published),
    authors: Array.isArray(a.authors) ? (a.authors as unknown[]).filter((x): x is string => typeof x === 'string') : [],
    overallSentimentScore: toNumber(a.overall_sentiment_score),
    overallSentimentLabel: typeof a.overall_sentiment_label === 'string' ? a.overall_sentiment_label : null,
    topics,
    tickerSentiment
  }
}

function rateLimited (): AlphaVantageError {
  return new AlphaVantageError('rate_limited', 'Alpha Vantage rate limit reached for this server\'s API key: wait a minute before asking again.')
}

/**
 * Alpha Vantage answers errors with HTTP 200 and one key (`Error Message`,
 * `Information`, `Note`); sort them into what the caller can do about it.
 */
export function classifyUpstreamMessage (body: Record<string, unknown>): AlphaVantageError | null {
  const errorMessage = body['Error Message']
  if (typeof errorMessage === 'string') {
    return new AlphaVantageError('invalid_request', 'Alpha Vantage rejected the query: check the ticker symbols and other arguments (an unknown or delisted ticker is the usual cause).')
  }
  if (typeof body.Note === 'string') return rateLimited()
  const info = body.Information
  if (typeof info === 'string') {
    // The order matters: Alpha Vantage's limit messages also advertise its
    // "premium plans" ("…25 requests per day. Please subscribe to any of the
    // premium plans…"), and its burst message names both limits ("1 request
    // per second … (25 requests per day)").
    const lower = info.toLowerCase()
    if (/\bdemo\b/.test(lower)) {
      return new AlphaVantageError('demo_key', 'This server uses Alpha Vantage\'s public demo key, which only serves the documented example (ticker AAPL). Ask the operator to set ALPHA_VANTAGE_API_KEY.')
    }
    if (/per second|per minute|frequency|sparingly|burst/.test(lower)) {
      return rateLimited()
    }
    if (lower.includes('per day') || lower.includes('daily')) {
      return new AlphaVantageError('daily_limit', 'Alpha Vantage\'s daily request limit for this server\'s API key is reached (the free tier allows 25 requests a day): try again tomorrow.')
    }
    if (lower.includes('premium')) {
      return new AlphaVantageError('premium_only', 'Alpha Vantage serves this query only to premium plans; try a narrower query.')
    }
    if (lower.includes('rate limit')) {
      return rateLimited()
    }
    if (lower.includes('invalid')) {
      return new AlphaVantageError('invalid_request', 'Alpha Vantage found the query invalid: check the ticker symbols and topics.')
    }
    return new AlphaVantageError('unavailable', 'Alpha Vantage did not return news for this query; try again later.')
  }
  return null
}

/** The NEWS_SENTIMENT client: one keep-alive pool, bounded time and size for every call. */
export class AlphaVantageClient {
  readonly #pool: Pool
  readonly #base: URL
  readonly #opts: Required<AlphaVantageClientOptions>
  /** Upstream calls made (each HTTP request counts, whatever its outcome). */
  calls = 0

  constructor (opts: AlphaVantageClientOptions) {
    this.#opts = { maxBytes: 8 * 1024 * 1024, ...opts }
    this.#base = new URL(opts.baseUrl)
    this.#pool = new Pool(this.#base.origin, {
      connections: opts.maxConnections,
      keepAliveTimeout: 30_000,
      headersTimeout: opts.timeoutMs,
      bodyTimeout: opts.timeoutMs,
      connect: { timeout: opts.timeoutMs }
    })
  }

  /** The path and query of a call, with the API key. Never log it. */
  #path (query: NewsQuery): string {
    const params = new URLSearchParams(this.#base.search)
    params.set('function', 'NEWS_SENTIMENT')
    if (query.tickers !== undefined && query.tickers.length > 0) params.set('tickers', query.tickers.join(','))
    if (query.topics !== undefined && query.topics.length > 0) params.set('topics', query.topics.join(','))
    if (query.timeFrom !== undefined) params.set('time_from', query.timeFrom)
    if (query.timeTo !== undefined) params.set('time_to', query.timeTo)
    if (query.sort !== undefined) params.set('sort', query.sort)
    if (query.limit !== undefined) params.set('limit', String(query.limit))
    params.set('apikey', this.#opts.apiKey)
    return `${this.#base.pathname}?${params.toString()}`
  }

  async newsSentiment (query: NewsQuery, { signal }: { signal?: AbortSignal } = {}): Promise<NewsFeed> {
    const { body, bytes } = await this.#get(this.#path(query), signal)
    const failure = classifyUpstreamMessage(body)
    if (failure !== null) throw failure
    if (!Array.isArray(body.feed)) throw new AlphaVantageError('bad_response', 'Alpha Vantage returned a response without a news feed; try again later.')
    const articles: Article[] = []
    let dropped = 0
    for (const raw of body.feed) {
      const article = parseArticle(raw)
      if (article === null) dropped++
      else articles.push(article)
    }
    return { articles, dropped, bytes: retainedBytes(articles), upstreamBytes: bytes }
  }

  async #get (path: string, signal: AbortSignal | undefined): Promise<{ body: Record<string, unknown>, bytes: number }> {
    const deadline = AbortSignal.timeout(this.#opts.timeoutMs)
    const combined = signal === undefined ? deadline : AbortSignal.any([signal, deadline])
    this.calls++
    let statusCode: number
    let raw: Buffer = Buffer.alloc(0)
    try {
      const res = await this.#pool.request({ method: 'GET', path, headers: { accept: 'application/json' }, signal: combined })
      statusCode = res.statusCode
      if (statusCode >= 300) {
        await res.body.dump()
      } else {
        raw = await this.#readCapped(res.body)
      }
    } catch (err) {
      if (signal?.aborted === true) throw new AlphaVantageError('unavailable', 'The request was cancelled.')
      if (err instanceof AlphaVantageError) throw err
      const timedOut = deadline.aborted || err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError || err instanceof undiciErrors.ConnectTimeoutError
      if (timedOut) throw new AlphaVantageError('unavailable', `Alpha Vantage did not answer within ${this.#opts.timeoutMs / 1000} s; try again shortly.`, true)
      throw new AlphaVantageError('unavailable', 'Alpha Vantage is unreachable right now; try again shortly.')
    }
    if (statusCode === 429) throw new AlphaVantageError('rate_limited', 'Alpha Vantage is rate limiting this server; try again later.')
    if (statusCode >= 500) throw new AlphaVantageError('unavailable', `Alpha Vantage is unavailable (HTTP ${statusCode}); try again shortly.`, true)
    if (statusCode >= 300) throw new AlphaVantageError('bad_response', `Alpha Vantage answered HTTP ${statusCode}; try again later.`)
    let parsed: unknown
    try {
      parsed = JSON.parse(raw.toString('utf8'))
    } catch {
      throw new AlphaVantageError('bad_response', 'Alpha Vantage returned an unreadable (non-JSON) response; try again shortly.')
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw new AlphaVantageError('bad_response', 'Alpha Vantage returned an unexpected response; try again shortly.')
    }
    // Bytes, not UTF-16 code units: this is what the cache's byte bound counts.
    return { body: parsed as Record<string, unknown>, bytes: raw.length }
  }

  async #readCapped (body: AsyncIterable<Buffer> & { destroy: () => void }): Promise<Buffer> {
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of body) {
      size += chunk.length
      if (size > this.#opts.maxBytes) {
        body.destroy()
        throw new AlphaVantageError('bad_response', 'Alpha Vantage returned an oversized response; try a smaller limit.')
      }
      chunks.push(chunk)
    }
    return Buffer.concat(chunks)
  }

  async close (): Promise<void> {
    await this.#pool.close()
  }
}
