import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import { AlphaVantageError, type Article } from '../lib/alpha-vantage.js'
import { ToolError } from '../plugins/mcp.js'

/** Stocks (AAPL, BRK.B, RDS-A), crypto (CRYPTO:BTC) and currencies (FOREX:USD), as Alpha Vantage names them. */
export const TICKER = /^(?:(?:CRYPTO|FOREX):[A-Za-z0-9]{2,10}|[A-Za-z0-9]{1,10}(?:[.-][A-Za-z0-9]{1,4})?)$/i

export const Ticker = z.string().trim()
  .regex(TICKER, 'must be a ticker symbol such as AAPL, BRK.B, CRYPTO:BTC or FOREX:USD')
  .transform(s => s.toUpperCase())

export const NewsSentimentInput = z.object({
  ticker: Ticker.describe('Ticker symbol: a stock (AAPL, BRK.B), CRYPTO:BTC or FOREX:EUR'),
  limit: z.number().int().min(1).max(50).default(5).describe('How many of the most recent articles to return (1-50, default 5)')
})

const Sentiment = z.object({
  score: z.number().nullable(),
  label: z.string().nullable()
})

export const ArticleOutput = z.object({
  title: z.string(),
  url: z.string(),
  source: z.string(),
  publishedAt: z.string().nullable().describe('ISO 8601, UTC'),
  summary: z.string(),
  overallSentiment: Sentiment,
  tickerSentiment: Sentiment.extend({ relevance: z.number().nullable() }).nullable()
    .describe('Sentiment about the asked ticker in this article, if Alpha Vantage scored it')
})

export const NewsSentimentOutput = z.object({
  ticker: z.string(),
  articleCount: z.number().int(),
  articles: z.array(ArticleOutput)
})

export type NewsSentimentResult = z.infer<typeof NewsSentimentOutput>

const SUMMARY_CHARS = 400

function trimText (text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1).trimEnd()}…`
}

function fixed (n: number | null, digits = 3): string {
  return n === null ? 'n/a' : n.toFixed(digits)
}

export function toOutput (ticker: string, articles: Article[]): NewsSentimentResult {
  return {
    ticker,
    articleCount: articles.length,
    articles: articles.map(a => {
      const own = a.tickerSentiment.find(t => t.ticker === ticker)
      return {
        title: a.title,
        url: a.url,
        source: a.source,
        publishedAt: a.publishedAt,
        summary: trimText(a.summary, SUMMARY_CHARS),
        overallSentiment: { score: a.overallSentimentScore, label: a.overallSentimentLabel },
        tickerSentiment: own === undefined ? null : { score: own.score, label: own.label, relevance: own.relevance }
      }
    })
  }
}

export function toText (result: NewsSentimentResult): string {
  if (result.articles.length === 0) {
    return `No recent news articles found for ${result.ticker}. Check the symbol (stocks like AAPL, crypto as CRYPTO:BTC, currencies as FOREX:EUR).`
  }
  const lines = [`${result.articles.length} most recent news articles for ${result.ticker}:`]
  result.articles.forEach((a, i) => {
    const own = a.tickerSentiment === null
      ? `${result.ticker}: not scored`
      : `${result.ticker}: ${a.tickerSentiment.label ?? 'n/a'} (${fixed(a.tickerSentiment.score)}, relevance ${fixed(a.tickerSentiment.relevance)})`
    lines.push(
      '',
      `${i + 1}. ${a.title}`,
      `   ${a.source}, ${a.publishedAt ?? 'time unknown'}`,
      `   Overall: ${a.overallSentiment.label ?? 'n/a'} (${fixed(a.overallSentiment.score)}); ${own}`,
      ...(a.summary === '' ? [] : [`   ${a.summary}`]),
      ...(a.url === '' ? [] : [`   ${a.url}`])
    )
  })
  return lines.join('\n')
}

export default async function newsSentimentTool (fastify: FastifyInstance): Promise<void> {
  fastify.mcpTool({
    name: 'get_news_sentiment',
    title: 'News sentiment for a ticker',
    description: 'Recent financial news about one stock, crypto or forex ticker, with Alpha Vantage sentiment scores: ' +
      'for each article the title, source, publication time (UTC), summary, overall sentiment, and the sentiment and relevance for the ticker. ' +
      'Use it to see how the news treats a company or asset right now.',
    inputSchema: NewsSentimentInput,
    outputSchema: NewsSentimentOutput,
    annotations: { title: 'News sentiment for a ticker', readOnlyHint: true, openWorldHint: true, idempotentHint: true, destructiveHint: false }
  }, async ({ ticker, limit }, { signal }) => {
    let articles: Article[]
    try {
      ({ articles } = await fastify.alphaVantage.newsSentiment({ tickers: [ticker], sort: 'LATEST', limit: Math.max(limit, 50) }, { signal }))
    } catch (err) {
      if (err instanceof AlphaVantageError) throw new ToolError(err.message)
      throw err
    }
    // Newest first; an article without a readable time goes last rather than away.
    const latest = articles
      .toSorted((a, b) => (b.publishedAt ?? '').localeCompare(a.publishedAt ?? ''))
      .slice(0, limit)
    const result = toOutput(ticker, latest)
    return { content: [{ type: 'text', text: toText(result) }], structuredContent: result }
  })
}
