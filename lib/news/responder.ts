import { AlphaVantageError, type NewsFeed, type NewsQuery } from './alpha-vantage.js'
import type { NewsAnswer, NewsService } from './service.js'
import { ageText, freshnessOf, noticeLines } from './format.js'
import { BoundedLru } from './lru.js'
import { ToolError, type CallToolResult } from '../mcp/tools.js'
import type { AuthContext } from '../auth/access-token-verifier.js'

/** What a tool shows for one call: built from the (memoised) analysis, the caller's order and limit. */
export interface NewsView<F extends Record<string, unknown>> {
  /** structuredContent, less freshness and quota. */
  fields: F
  /** The text's first line: the aggregate. */
  lead: string
  /** The text after the notices: the articles. */
  body: string
}

/** What a tool computes once per cached feed and question: never the caller's order or limit. */
export interface NewsAnalysis {
  /** Estimated retained size, for the memo's byte bound. */
  bytes: number
}

/**
 * For tools whose every figure depends on the call's own settings (a window,
 * a minimum): nothing is shared per cached feed, the whole view is memoised per call.
 */
export const noAnalysis = (): NewsAnalysis => ({ bytes: 0 })

type Fields<S> = Omit<S, 'freshness' | 'quota'> & Record<string, unknown>
type Result<S> = CallToolResult & { structuredContent: S }

interface Memo<T> {
  /** The cached answer this was computed from (its key and when upstream produced it). */
  source: string
  value: T
}

interface ResultMemo<S> extends Memo<Result<S>> {
  stamp: string
}

export interface ResponderOptions {
  /** Analyses kept (one per cached question). */
  maxAnalyses?: number
  maxAnalysisBytes?: number
  /** Whole results kept (one per caller order and limit). */
  maxResults?: number
  maxResultBytes?: number
}

export interface ResponderCallOptions {
  readonly signal?: AbortSignal
  readonly auth?: AuthContext | null
  /**
   * MCP logging (a tool context's `mcpLog`): told of a stale answer served,
   * the quota nearly or entirely spent, and (through the service) a retry.
   */
  readonly mcpLog?: { readonly notice: (data: unknown, logger?: string) => void, readonly warning: (data: unknown, logger?: string) => void }
}

/** Tells the client's log what the answer's notices tell the model: only when there is something to tell. */
function logNotices (answer: NewsAnswer, mcpLog: NonNullable<ResponderCallOptions['mcpLog']>): void {
  if (answer.staleReason !== undefined) {
    mcpLog.warning({ message: `Served a stale answer (${ageText(answer.ageSeconds)} old, fetched ${answer.fetchedAt}): ${answer.staleReason}` }, 'news')
  }
  const q = answer.quota
  if (q.state === 'spent') mcpLog.warning({ message: `Alpha Vantage quota spent for today (${q.used}/${q.limit}); only cached questions are answered until ${q.resetsAt}`, quota: q }, 'news')
  else if (q.state === 'near') mcpLog.notice({ message: `Alpha Vantage quota nearly spent: ${q.used} of ${q.limit} requests used today`, quota: q }, 'news')
}

/**
 * Asks the news service and turns its answer into a tool result, doing the
 * costly work once per cached feed. Two memos, each an LRU bounded in entries
 * and estimated bytes, so that however callers reorder their tickers or vary
 * `limit`, what this keeps is capped (an unbounded per-order-and-limit memo
 * once let one caller grow the heap until the process died):
 *
 * - the analysis (aggregates, ranking) per cached question: the cache key is
 *   already the normalised question (sorted tickers and topics), so every
 *   spelling of a question shares one analysis;
 * - the whole result per caller order and limit, reused while freshness and
 *   quota figures are unchanged: the hot path of a repeated question, and the
 *   transport reuses the result's checked copy and serialization with it.
 *   Slicing to `limit` is cheap (at most 50 articles), so nothing else is
 *   kept per limit.
 *
 * Neither memo holds the feed: an entry names its source (cache key and fetch
 * time) and is rebuilt when the answer changes, so the cache's bound stays the
 * bound on feeds.
 */
export class NewsResponder<S extends { freshness: unknown, quota: unknown }> {
  readonly #analyses: BoundedLru<Memo<NewsAnalysis>>
  readonly #results: BoundedLru<ResultMemo<S>>

  constructor (readonly news: Pick<NewsService, 'query'>, opts: ResponderOptions = {}) {
    this.#analyses = new BoundedLru(opts.maxAnalyses ?? 256, opts.maxAnalysisBytes ?? 8 * 1024 * 1024)
    this.#results = new BoundedLru(opts.maxResults ?? 128, opts.maxResultBytes ?? 8 * 1024 * 1024)
  }

  /** What the memos hold now: entries and estimated bytes. */
  get memoStats (): { analyses: number, analysisBytes: number, results: number, resultBytes: number } {
    return { analyses: this.#analyses.size, analysisBytes: this.#analyses.bytes, results: this.#results.size, resultBytes: this.#results.bytes }
  }

  /**
   * @param callKey what the result depends on besides the question: the caller's order and limit.
   * @param opts a tool context will do: its signal is read only on a cache miss, its subject charges the quota.
   */
  async respond<A extends NewsAnalysis> (
    query: NewsQuery,
    callKey: string,
    opts: ResponderCallOptions,
    analyse: (feed: NewsFeed) => A,
    present: (analysis: A, feed: NewsFeed) => NewsView<Fields<S>>
  ): Promise<Result<S>> {
    let answer: NewsAnswer
    try {
      answer = await this.news.query(query, opts)
    } catch (err) {
      if (err instanceof AlphaVantageError) throw new ToolError(err.message)
      throw err
    }
    const { quota } = answer
    // Nothing to read on the usual path: a fresh answer with quota left.
    if (answer.staleReason !== undefined || quota.state !== 'ok') {
      const mcpLog = opts.mcpLog
      if (mcpLog !== undefined) logNotices(answer, mcpLog)
    }
    const source = `${answer.key}@${answer.fetchedAt}`
    const stamp = `${answer.ageSeconds}|${String(answer.cached)}|${answer.staleReason ?? ''}|${quota.used}|${quota.limit}|${quota.resetsAt}`
    const resultKey = `${answer.key}#${callKey}`
    const kept = this.#results.get(resultKey)
    if (kept !== undefined && kept.source === source && kept.stamp === stamp) return kept.value

    let memo = this.#analyses.get(answer.key)
    if (memo === undefined || memo.source !== source) {
      const value = analyse(answer.feed)
      memo = { source, value }
      this.#analyses.set(answer.key, memo, value.bytes + 2 * (source.length + answer.key.length))
    }
    const view = present(memo.value as A, answer.feed)
    const text = [view.lead, ...noticeLines(answer), view.body].join('\n')
    const result = {
      content: [{ type: 'text' as const, text }],
      structuredContent: { ...view.fields, freshness: freshnessOf(answer), quota } as unknown as S
    }
    // The text carries about what structuredContent does; the transport keeps a
    // checked copy and its JSON beside the result: about four times the text, in UTF-16.
    this.#results.set(resultKey, { source, stamp, value: result }, 8 * text.length + 2 * resultKey.length + 1024)
    return result
  }
}
