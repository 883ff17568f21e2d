import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import { NewsResponder, noAnalysis } from '../lib/news/responder.js'
import { Ticker, TimeArg, UPSTREAM_LIMIT, checkWindow, timeFromDescription, timeToDescription, toNewsQuery, windowOf } from '../lib/news/arguments.js'
import { MAX_WINDOW_MS, changeText, chooseBucketSize, isoSeconds, partText, sentimentTrend, type TrendBucket } from '../lib/news/trend.js'
import { coverageNote, coverageOf } from '../lib/news/feed-window.js'
import { SENTIMENT_LABELS } from '../lib/news/sentiment.js'
import { FreshnessOutput, QuotaOutput, fixed } from '../lib/news/format.js'

const DEFAULT_WINDOW = '7d'

export const SentimentTrendInput = z.object({
  ticker: Ticker.describe('One ticker symbol: a stock (NVDA, BRK.B), crypto (CRYPTO:BTC) or currency (FOREX:EUR)'),
  timeFrom: TimeArg.optional().describe(`${timeFromDescription}. Default ${DEFAULT_WINDOW}`),
  timeTo: TimeArg.optional().describe(`${timeToDescription}. Default now`),
  bucket: z.enum(['auto', 'hour', 'day']).default('auto')
    .describe('Bucket size: day (US Eastern calendar days, windows up to 90 days), hour (windows up to 72 hours), or auto (hours up to 48 hours, else days)')
}).superRefine((args, ctx) => {
  checkWindow(args, ctx)
  const now = Date.now()
  const { from, to } = windowOf(args, DEFAULT_WINDOW, now)
  if (from >= to) return // checkWindow named it already, or timeFrom is in the future
  const size = chooseBucketSize(from, to, args.bucket)
  if (to - from > MAX_WINDOW_MS[size]) {
    ctx.addIssue({ code: 'custom', path: ['timeFrom'], message: `the window is too long for ${size === 'hour' ? 'hourly' : 'daily'} buckets (at most ${size === 'hour' ? '72 hours' : '90 days'})` })
  }
})

const Label = z.enum(SENTIMENT_LABELS).nullable()

const BucketOutput = z.object({
  period: z.string().describe('US Eastern date (2024-03-10), or Eastern hour with its UTC offset (2024-03-10T03:00-04:00)'),
  start: z.string().describe('ISO 8601 UTC, inclusive'),
  end: z.string().describe('ISO 8601 UTC, exclusive'),
  articles: z.number().int(),
  score: z.number().nullable().describe('Relevance-weighted mean sentiment for the ticker, -1 to 1; null when no article'),
  label: Label
})

const PartOutput = z.object({
  buckets: z.number().int(),
  articles: z.number().int(),
  score: z.number().nullable(),
  label: Label
})

export const SentimentTrendOutput = z.object({
  ticker: z.string(),
  bucketSize: z.enum(['hour', 'day']),
  window: z.object({ from: z.string(), to: z.string() }).describe('ISO 8601 UTC'),
  buckets: z.array(BucketOutput),
  whole: PartOutput.describe('The whole window'),
  firstPart: PartOutput.describe('The first half of the buckets'),
  lastPart: PartOutput.describe('The last half of the buckets'),
  change: z.number().nullable().describe('lastPart.score - firstPart.score'),
  direction: z.enum(['improving', 'worsening', 'steady']).nullable().describe('steady when the change is under 0.05 either way'),
  peak: BucketOutput.nullable().describe('The bucket with the most articles (the earliest on a tie)'),
  complete: z.boolean().describe('False when Alpha Vantage returned its maximum of articles: the window\'s start may be missing some'),
  coverageFrom: z.string().nullable().describe('When not complete: the earliest article returned; buckets before it are incomplete'),
  freshness: FreshnessOutput,
  quota: QuotaOutput
})

type SentimentTrendResult = z.infer<typeof SentimentTrendOutput>

function bucketLine (b: TrendBucket): string {
  return b.articles === 0 ? `${b.period}  0` : `${b.period}  ${b.articles}  ${fixed(b.score)}  ${b.label as string}`
}

export default async function sentimentTrendTool (fastify: FastifyInstance): Promise<void> {
  const responder = new NewsResponder<SentimentTrendResult>(fastify.news)
  fastify.mcpTool({
    name: 'get_sentiment_trend',
    title: 'Sentiment trend for a ticker',
    description: 'Is the news sentiment on a ticker improving? One ticker\'s relevance-weighted sentiment over a window ' +
      `(default the last ${DEFAULT_WINDOW}) in US Eastern daily buckets (hourly for windows up to 48 h): score, label and article count per bucket, ` +
      'the change from the first to the last half of the window (improving / worsening / steady), and the busiest bucket. One Alpha Vantage call, ' +
      'shared with get_news_sentiment for the same ticker and window.',
    inputSchema: SentimentTrendInput,
    outputSchema: SentimentTrendOutput,
    annotations: { title: 'Sentiment trend for a ticker', readOnlyHint: true, openWorldHint: true, idempotentHint: true, destructiveHint: false }
  }, async (args, ctx) => {
    const now = Date.now()
    const { from } = windowOf(args, DEFAULT_WINDOW, now)
    const query = toNewsQuery({ timeFrom: from, ...(args.timeTo !== undefined && { timeTo: args.timeTo }), sort: 'LATEST' }, [args.ticker])
    return await responder.respond(query, `${args.ticker}|${from}|${args.timeTo ?? ''}|${args.bucket}`, ctx, noAnalysis, (_none, feed) => {
      // "Now" is when the view is built: the feed's own time, give or take the cache's freshness.
      const to = args.timeTo ?? Date.now()
      const trend = sentimentTrend(feed.articles, args.ticker, from, to, chooseBucketSize(from, to, args.bucket))
      const coverage = coverageOf(feed, UPSTREAM_LIMIT)
      const fields = {
        ticker: trend.ticker,
        bucketSize: trend.bucketSize,
        window: { from: isoSeconds(from), to: isoSeconds(to) },
        buckets: trend.buckets,
        whole: trend.whole,
        firstPart: trend.firstPart,
        lastPart: trend.lastPart,
        change: trend.change,
        direction: trend.direction,
        peak: trend.peak,
        ...coverage
      }
      const lines = [
        '',
        ...(coverage.complete ? [] : [coverageNote(coverage, UPSTREAM_LIMIT) as string]),
        `Per ${trend.bucketSize} (US Eastern${trend.bucketSize === 'day' ? ' date' : ' hour'} · articles · weighted score · label):`,
        ...trend.buckets.map(bucketLine)
      ]
      return {
        fields,
        lead: `${trend.ticker} sentiment ${fields.window.from} → ${fields.window.to}: ${changeText(trend)}. ` +
          `Whole window: ${partText(trend.whole)}. ` +
          (trend.peak === null ? 'No articles in the window.' : `Most coverage: ${trend.peak.period} (${trend.peak.articles} article${trend.peak.articles === 1 ? '' : 's'}).`),
        body: lines.join('\n')
      }
    })
  })
}
