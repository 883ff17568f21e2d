import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import type { Article, NewsFeed } from '../lib/news/alpha-vantage.js'
import { NewsResponder, type NewsView } from '../lib/news/responder.js'
import { Limit, Sort, TICKER, Ticker, TimeArg, Topic, checkWindow, timeFromDescription, timeToDescription, toNewsQuery } from '../lib/news/arguments.js'
import { describeSymbol, shippedSymbols, type SymbolEntry, type SymbolIndex } from '../lib/news/symbols.js'
import { ClientCapabilityError, ToolError, type ToolContext } from '../plugins/mcp.js'
import { aggregateFor, relevanceTo, timeSpanOf } from '../lib/news/sentiment.js'
import {
  AggregateOutput, ArticleOutput, FreshnessOutput, QuotaOutput, TimeSpanOutput,
  aggregateText, articleLines, articleView, spanText
} from '../lib/news/format.js'

const LIST_SIZE = 'must list 1 to 5 ticker symbols'
const TickerList = z.array(Ticker).min(1, LIST_SIZE).max(5, LIST_SIZE)

/**
 * One symbol, or a company name the shipped symbol list knows
 * ("Apple", "Bank of America"), kept as typed for the handler to resolve:
 * anything else is refused by the schema as before.
 */
const TickerOrName = z.string().trim().max(64)
  .refine(value => TICKER.test(value) || shippedSymbols().resolve(value).kind === 'candidates',
    'must be a ticker symbol such as AAPL, BRK.B, CRYPTO:BTC or FOREX:USD (or the name of a listed company)')

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
  ticker: z.union([TickerOrName, TickerList], { error: tickerError })
    .describe('One ticker symbol: a stock (AAPL, BRK.B), crypto (CRYPTO:BTC) or currency (FOREX:EUR); a company name is looked up. ' +
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

/** The candidates a name may mean, as a person reads them: "AAPL (Apple Inc., NASDAQ), APLE (…)". */
function candidateList (candidates: SymbolEntry[]): string {
  return candidates.map(describeSymbol).join(', ')
}

/**
 * A company name or an ambiguous symbol ("Apple", "BRK") as one ticker: the
 * user chooses among the candidates of the shipped list through the client
 * (elicitation, form mode, MCP client "Elicitation") where the client offers
 * it; where it does not, the model is told the candidates and to call again.
 */
export async function chooseTicker (typed: string, candidates: SymbolEntry[], ctx: Pick<ToolContext, 'elicit'>): Promise<string> {
  const again = `call get_news_sentiment again with one of them as ticker: ${candidateList(candidates)}`
  let answer
  try {
    answer = await ctx.elicit({
      message: `"${typed}" is not a ticker symbol. Which one do you mean?`,
      requestedSchema: {
        type: 'object',
        properties: {
          ticker: {
            type: 'string',
            title: 'Ticker',
            description: `Symbols matching "${typed}"`,
            enum: candidates.map(c => c.ticker),
            enumNames: candidates.map(describeSymbol)
          }
        },
        required: ['ticker']
      }
    })
  } catch (err) {
    if (err instanceof ClientCapabilityError) throw new ToolError(`"${typed}" is not a ticker symbol; it may mean several. Ask the user which one, then ${again}.`)
    throw err
  }
  const chosen = answer.action === 'accept' ? answer.content?.ticker : undefined
  if (typeof chosen === 'string' && candidates.some(c => c.ticker === chosen)) return chosen
  throw new ToolError(`The user chose no ticker for "${typed}". If they still want news, ${again}.`)
}

/**
 * The one ticker asked about: a listed or symbol-shaped one as it is, or the
 * candidates a name or an ambiguous symbol may mean. Synchronous, and a listed
 * symbol costs one Map lookup: this is on every call of the tool.
 */
function tickerOf (symbols: SymbolIndex, typed: string): string | SymbolEntry[] {
  const upper = typed.toUpperCase()
  if (symbols.has(upper)) return upper
  const resolution = symbols.resolve(typed)
  // Not in the list but shaped like a symbol (the schema saw to that): asked as it is (the list is not exhaustive).
  return resolution.kind === 'candidates' ? resolution.candidates : upper
}

export default async function newsSentimentTool (fastify: FastifyInstance): Promise<void> {
  const symbols = shippedSymbols()
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
    let tickers: string[]
    if (typeof args.ticker === 'string') {
      const one = tickerOf(symbols, args.ticker)
      tickers = [typeof one === 'string' ? one : await chooseTicker(args.ticker, one, ctx)]
    } else {
      tickers = [...new Set(args.ticker)]
    }
    return await responder.respond(
      toNewsQuery(args, tickers),
      tickers.length === 1 ? String(args.limit) : `${tickers.join(',')}|${args.limit}`,
      ctx,
      feed => analyseTickers(tickers, feed),
      (analysis, feed) => presentTickers(analysis, tickers, args.limit, feed)
    )
  })
}
