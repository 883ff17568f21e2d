import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import type { Article } from '../lib/news/alpha-vantage.js'
import { NewsResponder } from '../lib/news/responder.js'
import { Limit, Sort, TimeArg, Topic, checkWindow, timeFromDescription, timeToDescription, toNewsQuery, topicMatches } from '../lib/news/arguments.js'
import { overallAggregate, timeSpanOf } from '../lib/news/sentiment.js'
import {
  AggregateOutput, ArticleOutput, FreshnessOutput, QuotaOutput, TimeSpanOutput,
  aggregateText, articleLines, articleView, spanText
} from '../lib/news/format.js'

export const MarketNewsInput = z.object({
  topics: z.array(Topic).min(1).max(5).describe('One or more topics; articles must match all of them'),
  timeFrom: TimeArg.optional().describe(timeFromDescription),
  timeTo: TimeArg.optional().describe(timeToDescription),
  sort: Sort.default('LATEST').describe('Which articles Alpha Vantage picks: LATEST (default), EARLIEST or RELEVANCE'),
  limit: Limit
}).superRefine(checkWindow)

export const MarketNewsOutput = z.object({
  topics: z.array(z.string()),
  aggregate: AggregateOutput.describe('Mean overall sentiment of the articles considered'),
  articlesConsidered: z.number().int(),
  timeSpan: TimeSpanOutput,
  articles: z.array(ArticleOutput.extend({ topicRelevance: z.number() })).describe('At most `limit` articles, most relevant to the topics first'),
  freshness: FreshnessOutput,
  quota: QuotaOutput
})

type MarketNewsResult = z.infer<typeof MarketNewsOutput>

function topicRelevance (topics: string[], article: Article): number {
  let sum = 0
  for (const t of article.topics) {
    if (topics.some(code => topicMatches(code, t.topic))) sum += t.relevance ?? 0
  }
  return sum
}

export default async function marketNewsTool (fastify: FastifyInstance): Promise<void> {
  const responder = new NewsResponder<MarketNewsResult>(fastify.news)
  fastify.mcpTool({
    name: 'get_market_news',
    title: 'Market news by topic',
    description: 'Financial news on market topics (earnings, ipo, technology, economy_monetary, blockchain, …) with no ticker: ' +
      'one line with the mean sentiment and article counts per label, then the most relevant articles. ' +
      'For news about a specific company or asset, use get_news_sentiment.',
    inputSchema: MarketNewsInput,
    outputSchema: MarketNewsOutput,
    annotations: { title: 'Market news by topic', readOnlyHint: true, openWorldHint: true, idempotentHint: true, destructiveHint: false }
  }, async (args, ctx) => {
    const topics = [...new Set(args.topics)]
    return await responder.respond(toNewsQuery(args, undefined, topics), String(args.limit), ctx, feed => {
      const { articles } = feed
      const ranked = articles
        .map((article, i) => ({ article, i, relevance: topicRelevance(topics, article) }))
        .sort((a, b) => b.relevance - a.relevance || a.i - b.i)
        .slice(0, args.limit)
        .map(r => ({ ...articleView(r.article, []), topicRelevance: Number(r.relevance.toFixed(6)) }))
      const fields = {
        topics,
        aggregate: overallAggregate(articles),
        articlesConsidered: articles.length,
        timeSpan: timeSpanOf(articles),
        articles: ranked
      }
      return {
        fields,
        lead: `${topics.join(' + ')}: ${aggregateText(fields.aggregate, 'mean overall score')}${spanText(fields.timeSpan)}`,
        body: ranked.length === 0
          ? 'No news articles found for these topics and time window; widen the window or drop a topic.'
          : ['', `${ranked.length} of ${articles.length} articles, most relevant first:`, ...ranked.flatMap(articleLines)].join('\n')
      }
    })
  })
}
