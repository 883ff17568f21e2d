import { AlphaVantageError, type NewsFeed, type NewsQuery } from './alpha-vantage.js'
import type { NewsAnswer, NewsService } from './service.js'
import { freshnessOf, noticeLines } from './format.js'
import { ToolError, type CallToolResult } from '../mcp/tools.js'

/** What a tool computes from a feed: the same for every call answered from the same cached feed. */
export interface NewsView<F extends Record<string, unknown>> {
  /** structuredContent, less freshness and quota. */
  fields: F
  /** The text's first line: the aggregate. */
  lead: string
  /** The text after the notices: the articles. */
  body: string
}

type Fields<S> = Omit<S, 'freshness' | 'quota'> & Record<string, unknown>
type Result<S> = CallToolResult & { structuredContent: S }

interface Memo<S> {
  view: NewsView<Fields<S>>
  stamp: string | undefined
  result: Result<S> | undefined
}

/**
 * Asks the news service and turns its answer into a tool result, doing the
 * work once per cached feed: the view (aggregate, ranking, text) is kept with
 * the feed (a WeakMap: it goes when the cache drops the feed), and the whole
 * result is reused while its freshness and quota figures are unchanged, which
 * also lets the transport reuse its serialization.
 */
export class NewsResponder<S extends { freshness: unknown, quota: unknown }> {
  readonly #memos = new WeakMap<NewsFeed, Map<string, Memo<S>>>()

  constructor (readonly news: NewsService) {}

  /** @param viewKey what the view depends on besides the feed (tickers, limit …). */
  /** @param opts a tool context will do: its signal is read only on a cache miss. */
  async respond (query: NewsQuery, viewKey: string, opts: { readonly signal?: AbortSignal }, build: (feed: NewsFeed) => NewsView<Fields<S>>): Promise<Result<S>> {
    let answer: NewsAnswer
    try {
      answer = await this.news.query(query, opts)
    } catch (err) {
      if (err instanceof AlphaVantageError) throw new ToolError(err.message)
      throw err
    }
    let perFeed = this.#memos.get(answer.feed)
    if (perFeed === undefined) {
      perFeed = new Map()
      this.#memos.set(answer.feed, perFeed)
    }
    let memo = perFeed.get(viewKey)
    if (memo === undefined) {
      memo = { view: build(answer.feed), stamp: undefined, result: undefined }
      perFeed.set(viewKey, memo)
    }
    const { quota } = answer
    const stamp = `${answer.ageSeconds}|${String(answer.cached)}|${answer.staleReason ?? ''}|${quota.used}|${quota.limit}|${quota.resetsAt}`
    if (memo.stamp !== stamp || memo.result === undefined) {
      const text = [memo.view.lead, ...noticeLines(answer), memo.view.body].join('\n')
      memo.result = {
        content: [{ type: 'text', text }],
        structuredContent: { ...memo.view.fields, freshness: freshnessOf(answer), quota } as unknown as S
      }
      memo.stamp = stamp
    }
    return memo.result
  }
}
