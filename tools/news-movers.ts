import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import { NewsResponder, noAnalysis } from '../lib/news/responder.js'
import { TimeArg, Topic, UPSTREAM_LIMIT, checkWindow, timeFromDescription, timeToDescription, toNewsQuery, windowOf } from '../lib/news/arguments.js'
import { newsMovers, type TickerMentions } from '../lib/news/movers.js'
import { SENTIMENT_LABELS, timeSpanOf } from '../lib/news/sentiment.js'
import { FreshnessOutput, QuotaOutput, TimeSpanOutput, fixed, spanText } from '../lib/news/format.js'
import { coverageNote, coverageOf } from '../lib/news/feed-window.js'
import { isoSeconds } from '../lib/news/trend.js'

const DEFAULT_WINDOW = '24h'

export const NewsMoversInput = z.object({
  topics: z.array(Topic).min(1).max(5).optional()
    .describe('Only news on these topics (all of them); leave out for the whole market'),
  timeFrom: TimeArg.optional().describe(`${timeFromDescription}. Default ${DEFAULT_WINDOW}`),
  timeTo: TimeArg.optional().describe(`${timeToDescription}. Default now`),
  minArticles: z.number().int().min(1).max(100).default(3)
    .describe('A ticker is ranked only when at least this many articles scored it (default 3)'),
  top: z.number().int().min(1).max(20).default(5).describe('Tickers per ranking (default 5)')
}).superRefine(checkWindow)

const MentionOutput = z.object({
  ticker: z.string(),
  articles: z.number().int().describe('Articles that scored the ticker'),
  score: z.number().describe('Relevance-weighted mean sentiment, -1 to 1'),
  label: z.enum(SENTIMENT_LABELS),
  relevance: z.number().describe('Mean relevance of the ticker in those articles (1 = about it)')
})

export const NewsMoversOutput = z.object({
  topics: z.array(z.string()).describe('Empty: the whole market'),
  window: z.object({ from: z.string(), to: z.string().nullable() }).describe('ISO 8601 UTC; to null means now'),
  articlesConsidered: z.number().int(),
  timeSpan: TimeSpanOutput,
  complete: z.boolean().describe('False when Alpha Vantage returned its maximum of articles (the oldest part of the window may be missing)'),
  tickersSeen: z.number().int(),
  ranked: z.number().int().describe('Tickers with at least minArticles articles'),
  minArticles: z.number().int(),
  mostMentioned: z.array(MentionOutput),
  mostBullish: z.array(MentionOutput).describe('Positive weighted scores, highest first'),
  mostBearish: z.array(MentionOutput).describe('Negative weighted scores, lowest first'),
  freshness: FreshnessOutput,
  quota: QuotaOutput
})

type NewsMoversResult = z.infer<typeof NewsMoversOutput>

function mentionText (m: TickerMentions): string {
  return `${m.ticker} ${m.articles} (${m.label} ${fixed(m.score)})`
}

export default async function newsMoversTool (fastify: FastifyInstance): Promise<void> {
  const responder = new NewsResponder<NewsMoversResult>(fastify.news)
  fastify.mcpTool({
    name: 'get_news_movers',
    title: 'Who moves the news',
    description: 'Who is moving the news? The tickers mentioned most in the market\'s news (or in one topic\'s, e.g. technology) ' +
      `over a window (default the last ${DEFAULT_WINDOW}), with their relevance-weighted sentiment, ranked three ways: most mentioned, ` +
      'most bullish, most bearish. Only tickers scored in at least minArticles articles are ranked. One Alpha Vantage call, ' +
      'shared with get_market_news for the same topics and window.',
    inputSchema: NewsMoversInput,
    outputSchema: NewsMoversOutput,
    annotations: { title: 'Who moves the news', readOnlyHint: true, openWorldHint: true, idempotentHint: true, destructiveHint: false }
  }, async (args, ctx) => {
    const topics = args.topics === undefined ? [] : [...new Set(args.topics)]
    const { from } = windowOf(args, DEFAULT_WINDOW, Date.now())
    const query = toNewsQuery({ timeFrom: from, ...(args.timeTo !== undefined && { timeTo: args.timeTo }), sort: 'LATEST' }, undefined, topics.length === 0 ? undefined : topics)
    return await responder.respond(query, `${from}|${args.timeTo ?? ''}|${args.minArticles}|${args.top}`, ctx, noAnalysis, (_none, feed) => {
      const movers = newsMovers(feed.articles, args.minArticles, args.top)
      const coverage = coverageOf(feed, UPSTREAM_LIMIT)
      const fields = {
        topics,
        window: { from: isoSeconds(from), to: args.timeTo === undefined ? null : isoSeconds(args.timeTo) },
        articlesConsidered: feed.articles.length,
        timeSpan: timeSpanOf(feed.articles),
        complete: coverage.complete,
        ...movers
      }
      const subject = topics.length === 0 ? 'Market news' : `${topics.join(' + ')} news`
      const rank = (name: string, list: TickerMentions[]): string => `${name}: ${list.length === 0 ? 'none' : list.map(mentionText).join(', ')}`
      return {
        fields,
        lead: `${subject}: ${feed.articles.length} articles${spanText(fields.timeSpan)}; ${movers.tickersSeen} tickers scored, ` +
          `${movers.ranked} with at least ${movers.minArticles} article${movers.minArticles === 1 ? '' : 's'} ranked.`,
        body: [
          rank('Most mentioned (articles, weighted sentiment)', movers.mostMentioned),
          rank('Most bullish', movers.mostBullish),
          rank('Most bearish', movers.mostBearish),
          ...(coverage.complete ? [] : [coverageNote(coverage, UPSTREAM_LIMIT) as string]),
          ...(movers.ranked === 0 ? [`No ticker reached ${movers.minArticles} articles: lower minArticles or widen the window.`] : [])
        ].join('\n')
      }
    })
  })
}
