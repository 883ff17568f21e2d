import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import { AlphaVantageError, type Article } from '../lib/alpha-vantage.js'
import { ToolError } from '../plugins/mcp.js'
import { Limit, Sort, TimeArg, Topic, checkWindow, timeFromDescription, timeToDescription, toNewsQuery, topicMatches } from '../lib/news-arguments.js'
import { overallAggregate, timeSpanOf } from '../lib/sentiment.js'
import {
  AggregateOutput, ArticleOutput, FreshnessOutput, QuotaOutput, TimeSpanOutput,
  aggregateText, articleLines, articleView, freshnessOf, noticeLines, spanText
} from '../lib/news-format.js'

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
  fastify.mcpTool({
    name: 'get_market_news',
    title: 'Market news by topic',
    description: 'Financial news on market topics (earnings, ipo, technology, economy_monetary, blockchain, …) with no ticker: ' +
      'one line with the mean sentiment and article counts per label, then the most relevant articles. ' +
      'For news about a specific company or asset, use get_news_sentiment.',
    inputSchema: MarketNewsInput,
    outputSchema: MarketNewsOutput,
    annotations: { title: 'Market news by topic', readOnlyHint: true, openWorldHint: true, idempotentHint: true, destructiveHint: false }
  }, async (args, { signal }) => {
    const topics = [...new Set(args.topics)]
    let answer
    try {
      answer = await fastify.news.query(toNewsQuery({ ...args, topics }), { signal })
    } catch (err) {
      if (err instanceof AlphaVantageError) throw new ToolError(err.message)
      throw err
    }
    const { articles } = answer.feed
    const ranked = articles
      .map((article, i) => ({ article, i, relevance: topicRelevance(topics, article) }))
      .sort((a, b) => b.relevance - a.relevance || a.i - b.i)
      .slice(0, args.limit)
      .map(r => ({ ...articleView(r.article, []), topicRelevance: Number(r.relevance.toFixed(6)) }))
    const result: MarketNewsResult = {
      topics,
      aggregate: overallAggregate(articles),
      articlesConsidered: articles.length,
      timeSpan: timeSpanOf(articles),
      articles: ranked,
      freshness: freshnessOf(answer),
      quota: answer.quota
    }
    const lines = [
      `${topics.join(' + ')}: ${aggregateText(result.aggregate, 'mean overall score')}${spanText(result.timeSpan)}`,
      ...noticeLines(answer)
    ]
    if (ranked.length === 0) {
      lines.push('No news articles found for these topics and time window; widen the window or drop a topic.')
    } else {
      lines.push('', `${ranked.length} of ${articles.length} articles, most relevant first:`)
      ranked.forEach((r, i) => lines.push(...articleLines(r, i)))
    }
    return { content: [{ type: 'text', text: lines.join('\n') }], structuredContent: result }
  })
}
