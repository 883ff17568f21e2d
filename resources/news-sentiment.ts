import type { FastifyInstance } from 'fastify'
import { RpcError, RpcFailure, ResourceNotFoundError, ToolError } from '../plugins/mcp.js'
import { NewsResponder } from '../lib/news/responder.js'
import { TICKER, toNewsQuery } from '../lib/news/arguments.js'
import { cacheKey } from '../lib/news/service.js'
import { completeTicker, shippedSymbols } from '../lib/news/symbols.js'
import { analyseTickers, presentTickers, type NewsSentimentResult } from '../tools/news-sentiment.js'

export const SENTIMENT_TEMPLATE = 'news://sentiment/{ticker}'
/** Articles the resource lists (the aggregate covers them all). */
const ARTICLES = 5

/** A symbol's URI: its characters (A-Z 0-9 . - :) are all allowed in a URI path as they are (RFC 3986 §3.3). */
export function sentimentUri (ticker: string): string {
  return `news://sentiment/${ticker}`
}

/** The question get_news_sentiment asks for a ticker with its defaults: the resource reads that same cache entry. */
function latestNews (ticker: string): ReturnType<typeof toNewsQuery> {
  return toNewsQuery({ sort: 'LATEST' }, [ticker])
}

/**
 * `news://sentiment/{ticker}`: a ticker's latest sentiment, as
 * get_news_sentiment answers it with its defaults, from the same cache (no
 * upstream call when it holds the answer). Subscribable: a fresh answer
 * stored for the ticker notifies the subscribers.
 */
export default async function newsSentimentResource (fastify: FastifyInstance): Promise<void> {
  const symbols = shippedSymbols()
  const responder = new NewsResponder<NewsSentimentResult>(fastify.news)
  fastify.mcpResourceTemplate({
    uriTemplate: SENTIMENT_TEMPLATE,
    name: 'news-sentiment',
    title: 'Latest news sentiment for a ticker',
    description: 'The relevance-weighted sentiment of the latest news on a ticker (AAPL, BRK.B, CRYPTO:BTC), with the most relevant articles; ' +
      'the same answer as get_news_sentiment with its defaults, from the same cache. Subscribe to hear when it is refreshed.',
    mimeType: 'application/json',
    complete: { ticker: value => completeTicker(symbols, value) }
  }, async (uri, { ticker }, ctx) => {
    // A URI naming no symbol is none this server serves (MCP resources "Error Handling": -32002).
    if (!TICKER.test(ticker as string)) throw new ResourceNotFoundError(uri)
    const symbol = (ticker as string).toUpperCase()
    let result
    try {
      result = await responder.respond(latestNews(symbol), String(ARTICLES), ctx,
        feed => analyseTickers([symbol], feed),
        (analysis, feed) => presentTickers(analysis, [symbol], ARTICLES, feed))
    } catch (err) {
      // The upstream could not answer (and the cache had nothing): say why, as the tool would.
      if (err instanceof ToolError) throw new RpcFailure(RpcError.InternalError, err.message)
      /* c8 ignore next 2 -- a bug, not an upstream answer: the protocol logs it and answers -32603 */
      throw err
    }
    return { contents: [{ uri, mimeType: 'application/json', text: JSON.stringify(result.structuredContent) }] }
  })

  // A fresh answer for exactly this question (fetched on this replica): tell the subscribers, wherever they are.
  const stop = fastify.news.onStored((query, key) => {
    const ticker = query.tickers?.length === 1 ? query.tickers[0] as string : undefined
    // mcpResourceUpdated never rejects.
    if (ticker !== undefined && key === cacheKey(latestNews(ticker))) fastify.mcpResourceUpdated(sentimentUri(ticker)).catch(() => {})
  })
  fastify.addHook('onClose', async () => { stop() })
}
