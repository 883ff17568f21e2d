import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import type { Article, NewsFeed } from '../lib/news/alpha-vantage.js'
import { NewsResponder, type NewsView } from '../lib/news/responder.js'
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

interface TopicsAnalysis {
  aggregate: MarketNewsResult['aggregate']
  /** Article indices, most relevant to the topics first, and their relevance. */
  ranked: Array<{ i: number, relevance: number }>
  timeSpan: MarketNewsResult['timeSpan']
  bytes: number
}

/** What depends on the topic set only: every order of the same topics shares it. */
export function analyseTopics (topics: string[], feed: NewsFeed): TopicsAnalysis {
  const { articles } = feed
  const ranked = articles
    .map((article, i) => ({ i, relevance: Number(topicRelevance(topics, article).toFixed(6)) }))
    .sort((a, b) => b.relevance - a.relevance || a.i - b.i)
  // A small object per article: about 40 bytes.
  return { aggregate: overallAggregate(articles), ranked, timeSpan: timeSpanOf(articles), bytes: 40 * ranked.length + 600 }
}

/** One call's answer: the caller's topic order (never another caller's), its limit. */
export function presentTopics (analysis: TopicsAnalysis, topics: string[], limit: number, feed: NewsFeed): NewsView<Omit<MarketNewsResult, 'freshness' | 'quota'>> {
  const { articles } = feed
  const ranked = analysis.ranked.slice(0, limit).map(r => ({ ...articleView(articles[r.i] as Article, []), topicRelevance: r.relevance }))
  const fields = {
    topics,
    aggregate: analysis.aggregate,
    articlesConsidered: articles.length,
    timeSpan: analysis.timeSpan,
    articles: ranked
  }
  return {
    fields,
    lead: `${topics.join(' + ')}: ${aggregateText(fields.aggregate, 'mean overall score')}${spanText(fields.timeSpan)}`,
    body: ranked.length === 0
      ? 'No news articles found for these topics and time window; widen the window or drop a topic.'
      : ['', `${ranked.length} of ${articles.length} articles, most relevant first:`, ...ranked.flatMap(articleLines)].join('\n')
  }
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
    // The caller's topic order is part of the result's key: it shows in the answer.
    return await responder.respond(
      toNewsQuery(args, undefined, topics),
      `${topics.join(',')}|${args.limit}`,
      ctx,
      feed => analyseTopics(topics, feed),
      (analysis, feed) => presentTopics(analysis, topics, args.limit, feed)
    )
  })
}
