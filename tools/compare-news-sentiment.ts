import { z } from 'zod'
import type { FastifyInstance } from 'fastify'
import { AlphaVantageError } from '../lib/news/alpha-vantage.js'
import type { NewsAnswer } from '../lib/news/service.js'
import { Ticker, TimeArg, UPSTREAM_LIMIT, checkWindow, timeFromDescription, timeToDescription, toNewsQuery, windowOf } from '../lib/news/arguments.js'
import { comparisonRow, planCalls, rankComparison, type ComparisonRow } from '../lib/news/compare.js'
import { coverageOf } from '../lib/news/feed-window.js'
import { isoSeconds, signed } from '../lib/news/trend.js'
import { AggregateOutput, QuotaOutput, TimeSpanOutput, aggregateText } from '../lib/news/format.js'
import { ToolError } from '../lib/mcp/tools.js'

const DEFAULT_WINDOW = '7d'

export const CompareNewsSentimentInput = z.object({
  tickers: z.array(Ticker).min(2).max(5)
    .describe('2 to 5 ticker symbols to compare side by side (AAPL, MSFT, CRYPTO:BTC …); each is looked up on its own'),
  timeFrom: TimeArg.optional().describe(`${timeFromDescription}. Default ${DEFAULT_WINDOW}`),
  timeTo: TimeArg.optional().describe(`${timeToDescription}. Default now`),
  dryRun: z.boolean().default(false).describe('Only say how many Alpha Vantage calls the comparison would spend, without spending them')
}).superRefine((args, ctx) => {
  if (new Set(args.tickers).size !== args.tickers.length) ctx.addIssue({ code: 'custom', path: ['tickers'], message: 'must not repeat a ticker' })
  checkWindow(args, ctx)
})

const RowOutput = AggregateOutput.extend({
  ticker: z.string(),
  change: z.number().nullable().describe('Weighted score of the last half of the window minus the first half'),
  direction: z.enum(['improving', 'worsening', 'steady']).nullable(),
  timeSpan: TimeSpanOutput,
  complete: z.boolean().describe('False when Alpha Vantage returned its maximum of articles for this ticker'),
  cached: z.boolean(),
  stale: z.boolean(),
  fetchedAt: z.string()
})

export const CompareNewsSentimentOutput = z.object({
  tickers: z.array(z.string()),
  window: z.object({ from: z.string(), to: z.string().nullable() }).describe('ISO 8601 UTC; to null means now'),
  dryRun: z.boolean(),
  upstreamCalls: z.object({
    needed: z.number().int().describe('One per ticker not answered from the cache'),
    cached: z.array(z.string()),
    remainingBefore: z.number().int().describe('Upstream calls left today before this comparison')
  }),
  comparison: z.array(RowOutput).describe('Most bullish first (empty for a dry run)'),
  leader: z.string().nullable().describe('The most bullish ticker'),
  failed: z.array(z.object({ ticker: z.string(), message: z.string() })).describe('Tickers Alpha Vantage could not answer for'),
  quota: QuotaOutput
})

type Row = z.infer<typeof RowOutput>

function rowText (row: Row): string {
  const trend = row.change === null ? 'trend n/a' : `${row.direction as string} ${signed(row.change)}`
  return `${row.ticker}: ${aggregateText(row, 'weighted score')} · ${trend}${row.stale ? ' (stale)' : ''}`
}

export default async function compareNewsSentimentTool (fastify: FastifyInstance): Promise<void> {
  const { news } = fastify

  fastify.mcpTool({
    name: 'compare_news_sentiment',
    title: 'Compare news sentiment of tickers',
    description: 'X or Y? 2 to 5 tickers side by side, each from its own news (not only articles naming all of them): ' +
      `relevance-weighted sentiment, label, article counts and trend over a window (default the last ${DEFAULT_WINDOW}), most bullish first. ` +
      'Costs one Alpha Vantage call per ticker not already cached (the answer says how many; dryRun: true only tells); ' +
      'refused, naming the cost, when it would use up the day\'s remaining calls.',
    inputSchema: CompareNewsSentimentInput,
    outputSchema: CompareNewsSentimentOutput,
    annotations: { title: 'Compare news sentiment of tickers', readOnlyHint: true, openWorldHint: true, idempotentHint: true, destructiveHint: false }
  }, async (args, ctx) => {
    const now = Date.now()
    const { from, to } = windowOf(args, DEFAULT_WINDOW, now)
    const queries = args.tickers.map(t => toNewsQuery({ timeFrom: from, ...(args.timeTo !== undefined && { timeTo: args.timeTo }), sort: 'LATEST' }, [t]))
    const cached = await Promise.all(queries.map(async q => await news.cached(q)))
    const quota = news.quota()
    // What this caller may still spend today: the server's day, and its own share of it (as the news service charges it).
    /* c8 ignore next -- ctx.auth is null only where the mcp plugin runs without auth, never in this app */
    const remaining = await news.quotaRemaining(ctx.auth === null ? undefined : ctx.auth.principal ?? ctx.auth.subject)
    const plan = planCalls(args.tickers, cached.map(c => c !== undefined), remaining, quota.resetsAt)
    const window = { from: isoSeconds(from), to: args.timeTo === undefined ? null : isoSeconds(args.timeTo) }
    const upstreamCalls = { needed: plan.needed, cached: plan.cached, remainingBefore: plan.remaining }
    if (args.dryRun) {
      const text = `Comparing ${args.tickers.join(', ')} would spend ${plan.needed} Alpha Vantage call${plan.needed === 1 ? '' : 's'}` +
        `${plan.cached.length > 0 ? ` (${plan.cached.join(', ')} cached)` : ''}; ${plan.remaining} left today.` +
        (plan.refusal === null ? '' : ` It would be refused: ${plan.refusal}`)
      return {
        content: [{ type: 'text', text }],
        structuredContent: { tickers: args.tickers, window, dryRun: true, upstreamCalls, comparison: [], leader: null, failed: [], quota }
      }
    }
    if (plan.refusal !== null) throw new ToolError(plan.refusal)

    // Concurrent: the news service coalesces each, paces them and keeps the quota.
    const answers = await Promise.all(queries.map(async (q, i) => {
      const hit = cached[i]
      if (hit !== undefined) return hit
      try {
        return await news.query(q, ctx)
      } catch (err) {
        if (err instanceof AlphaVantageError) return err
        /* c8 ignore next 2 -- a bug, not an upstream answer: it fails the call as any tool error does */
        throw err
      }
    }))
    const rows: Array<Row & ComparisonRow> = []
    const failed: Array<{ ticker: string, message: string }> = []
    answers.forEach((answer: NewsAnswer | AlphaVantageError, i) => {
      const ticker = args.tickers[i] as string
      if (answer instanceof AlphaVantageError) {
        failed.push({ ticker, message: answer.message })
        return
      }
      rows.push({
        ...comparisonRow(ticker, answer.feed, from, to),
        complete: coverageOf(answer.feed, UPSTREAM_LIMIT).complete,
        cached: answer.cached,
        stale: answer.stale,
        fetchedAt: answer.fetchedAt
      })
    })
    if (rows.length === 0) throw new ToolError(`No ticker could be compared: ${failed.map(f => `${f.ticker}: ${f.message}`).join(' ')}`)
    rankComparison(rows)
    const leader = rows[0]?.score === null ? null : rows[0] as Row
    const after = news.quota()
    const spent = plan.needed
    const lead = leader === null
      ? `${args.tickers.join(' or ')}: no scored articles for any of them since ${window.from}.`
      : `${args.tickers.join(' or ')} since ${window.from}: ${leader.ticker} reads most bullish (${leader.label as string}).`
    const text = [
      lead,
      ...rows.map(rowText),
      ...failed.map(f => `${f.ticker}: not compared: ${f.message}`),
      `Upstream: ${spent} Alpha Vantage call${spent === 1 ? '' : 's'} for this comparison${plan.cached.length > 0 ? ` (${plan.cached.join(', ')} from the cache)` : ''}; ${after.remaining} of ${after.limit} left today.`
    ].join('\n')
    return {
      content: [{ type: 'text', text }],
      structuredContent: {
        tickers: args.tickers,
        window,
        dryRun: false,
        upstreamCalls,
        comparison: rows,
        leader: leader?.ticker ?? null,
        failed,
        quota: after
      }
    }
  })
}
