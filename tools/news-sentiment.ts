import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import type { Article, NewsFeed } from '../lib/news/alpha-vantage.js'
import { NewsResponder, type NewsView } from '../lib/news/responder.js'
import { Limit, Sort, Ticker, TimeArg, Topic, checkWindow, timeFromDescription, timeToDescription, toNewsQuery } from '../lib/news/arguments.js'
import { aggregateFor, relevanceTo, timeSpanOf } from '../lib/news/sentiment.js'
import {
  AggregateOutput, ArticleOutput, FreshnessOutput, QuotaOutput, TimeSpanOutput,
  aggregateText, articleLines, articleView, spanText
} from '../lib/news/format.js'

const LIST_SIZE = 'must list 1 to 5 ticker symbols'
const TickerList = z.array(Ticker).min(1, LIST_SIZE).max(5, LIST_SIZE)

/**
 * `tickers` (the old name) and comma-separated symbols both become the one
 * required `ticker`, so that the JSON Schema a model reads requires exactly
 * one argument and older callers keep working.
 */
function foldTickers (input: unknown): unknown {
  // The protocol layer refuses non-object arguments before any schema runs; this keeps the schema safe on its own.
  /* c8 ignore next */
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return input
  const args = input as Record<string, unknown>
  const split = (v: unknown): unknown => typeof v === 'string' && v.includes(',') ? v.split(',') : v
  if (args.tickers === undefined) return typeof args.ticker === 'string' && args.ticker.includes(',') ? { ...args, ticker: split(args.ticker) } : input
  const { tickers, ...rest } = args
  const list = [args.ticker, tickers].flatMap(v => v === undefined ? [] : split(v) as unknown)
  return { ...rest, ticker: list.length === 1 ? list[0] : list }
}

/** A union's own message says only "Invalid input" (a list's issues come through as they are): say what a ticker looks like. */
function tickerError (issue: { input?: unknown }): string {
  if (issue.input === undefined) return 'is required: one ticker symbol (AAPL, BRK.B, CRYPTO:BTC, FOREX:EUR), or a list of up to 5'
  if (Array.isArray(issue.input)) return LIST_SIZE
  return 'must be a ticker symbol such as AAPL, BRK.B, CRYPTO:BTC or FOREX:USD'
}

export const NewsSentimentInput = z.preprocess(foldTickers, z.object({
  ticker: z.union([Ticker, TickerList], { error: tickerError })
    .describe('One ticker symbol: a stock (AAPL, BRK.B), crypto (CRYPTO:BTC) or currency (FOREX:EUR). ' +
      'A list of symbols (up to 5) means only articles that mention ALL of them; to compare tickers side by side use compare_news_sentiment'),
  topics: z.array(Topic).min(1).max(5).optional().describe('Only articles on these topics'),
  timeFrom: TimeArg.optional().describe(timeFromDescription),
  timeTo: TimeArg.optional().describe(timeToDescription),
  sort: Sort.default('LATEST').describe('Which articles Alpha Vantage picks: LATEST (default), EARLIEST or RELEVANCE'),
  limit: Limit
}).superRefine(checkWindow))

export const NewsSentimentOutput = z.object({
  tickers: z.array(z.string()),
  aggregate: z.array(AggregateOutput.extend({ ticker: z.string() }))
    .describe('Per asked ticker, across every article considered'),
  articlesConsidered: z.number().int().describe('Articles Alpha Vantage returned for the query (the aggregate covers all of them)'),
  timeSpan: TimeSpanOutput,
  articles: z.array(ArticleOutput).describe('At most `limit` articles, most relevant to the tickers first'),
  freshness: FreshnessOutput,
  quota: QuotaOutput
})

export type NewsSentimentResult = z.infer<typeof NewsSentimentOutput>

interface TickersAnalysis {
  aggregates: Map<string, NewsSentimentResult['aggregate'][number]>
  /** Article indices, most relevant to the tickers first. */
  ranked: number[]
  timeSpan: NewsSentimentResult['timeSpan']
  bytes: number
}

/** What depends on the ticker set only: every order of the same tickers shares it. */
export function analyseTickers (tickers: string[], feed: NewsFeed): TickersAnalysis {
  const { articles } = feed
  const aggregates = new Map(tickers.map(t => [t, aggregateFor(t, articles)]))
  const ranked = articles
    .map((article, i) => ({ i, relevance: relevanceTo(tickers, article) }))
    .sort((a, b) => b.relevance - a.relevance || a.i - b.i)
    .map(r => r.i)
  // A number in an array: 8 bytes; an aggregate: about 400.
  return { aggregates, ranked, timeSpan: timeSpanOf(articles), bytes: 8 * ranked.length + 400 * tickers.length + 200 }
}

/** One call's answer: the caller's ticker order, its limit. */
export function presentTickers (analysis: TickersAnalysis, tickers: string[], limit: number, feed: NewsFeed): NewsView<Omit<NewsSentimentResult, 'freshness' | 'quota'>> {
  const { articles } = feed
  const fields = {
    tickers,
    aggregate: tickers.map(t => analysis.aggregates.get(t) as NewsSentimentResult['aggregate'][number]),
    articlesConsidered: articles.length,
    timeSpan: analysis.timeSpan,
    articles: analysis.ranked.slice(0, limit).map(i => articleView(articles[i] as Article, tickers))
  }
  return {
    fields,
    lead: fields.aggregate.map(a => `${a.ticker}: ${aggregateText(a, 'weighted score')}`).join(' | ') + spanText(fields.timeSpan),
    body: fields.articles.length === 0
      ? `No news articles found for ${tickers.join(' + ')} with these filters. Check the symbol (stocks like AAPL, crypto as CRYPTO:BTC, currencies as FOREX:EUR) or widen the time window.`
      : ['', `${fields.articles.length} of ${articles.length} articles, most relevant first:`, ...fields.articles.flatMap(articleLines)].join('\n')
  }
}

export default async function newsSentimentTool (fastify: FastifyInstance): Promise<void> {
  const responder = new NewsResponder<NewsSentimentResult>(fastify.news)
  fastify.mcpTool({
    name: 'get_news_sentiment',
    title: 'News sentiment for a ticker',
    description: 'How the financial news feels about a stock, crypto or forex ticker: one aggregate line ' +
      '(relevance-weighted sentiment score and label, article counts per label, time span), then the most relevant articles ' +
      'with their sentiment for the ticker. Optional topics, time window (e.g. timeFrom "7d") and sort. ' +
      'For news by topic without a ticker, use get_market_news.',
    inputSchema: NewsSentimentInput,
    outputSchema: NewsSentimentOutput,
    annotations: { title: 'News sentiment for a ticker', readOnlyHint: true, openWorldHint: true, idempotentHint: true, destructiveHint: false }
  }, async (args, ctx) => {
    // A list means all of them. (One ticker, the usual case, allocates nothing more.)
    const tickers = typeof args.ticker === 'string' ? [args.ticker] : [...new Set(args.ticker)]
    return await responder.respond(
      toNewsQuery(args, tickers),
      tickers.length === 1 ? String(args.limit) : `${tickers.join(',')}|${args.limit}`,
      ctx,
      feed => analyseTickers(tickers, feed),
      (analysis, feed) => presentTickers(analysis, tickers, args.limit, feed)
    )
  })
}
