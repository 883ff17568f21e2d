import { z } from 'zod'
import type { Article } from './alpha-vantage.js'
import type { NewsAnswer } from './service.js'
import { SENTIMENT_LABELS, labelFor, type LabelCounts } from './sentiment.js'

/** What both news tools return besides their own figures: structured, and compact text for a model's context. */

const Label = z.enum(SENTIMENT_LABELS)

export const LabelCountsOutput = z.object(Object.fromEntries(SENTIMENT_LABELS.map(l => [l, z.number().int()])) as Record<typeof SENTIMENT_LABELS[number], z.ZodNumber>)

export const AggregateOutput = z.object({
  score: z.number().nullable().describe('Relevance-weighted mean sentiment score, -1 (bearish) to 1 (bullish)'),
  label: Label.nullable().describe('The score\'s label under Alpha Vantage\'s documented thresholds'),
  articles: z.number().int().describe('Articles that contributed a score'),
  labelCounts: LabelCountsOutput
})

export const TimeSpanOutput = z.object({
  from: z.string().nullable().describe('Earliest publication time covered, ISO 8601 UTC'),
  to: z.string().nullable().describe('Latest publication time covered, ISO 8601 UTC')
})

export const ArticleOutput = z.object({
  title: z.string(),
  url: z.string(),
  source: z.string(),
  publishedAt: z.string().nullable().describe('ISO 8601, UTC'),
  summary: z.string(),
  overallSentiment: z.object({ score: z.number().nullable(), label: Label.nullable() }),
  tickerSentiment: z.array(z.object({
    ticker: z.string(),
    score: z.number().nullable(),
    label: Label.nullable(),
    relevance: z.number().nullable()
  })).describe('Sentiment about the asked tickers in this article')
})

export const FreshnessOutput = z.object({
  fetchedAt: z.string().describe('When Alpha Vantage produced this answer, ISO 8601 UTC'),
  ageSeconds: z.number().int(),
  cached: z.boolean(),
  stale: z.boolean().describe('Served from cache past its freshness because Alpha Vantage failed'),
  note: z.string().nullable()
})

export const QuotaOutput = z.object({
  state: z.enum(['ok', 'near', 'spent']),
  used: z.number().int(),
  limit: z.number().int(),
  remaining: z.number().int(),
  resetsAt: z.string()
})

export type ArticleView = z.infer<typeof ArticleOutput>

const SUMMARY_CHARS = 280

export function trimText (text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1).trimEnd()}…`
}

export function fixed (n: number | null): string {
  return n === null ? 'n/a' : n.toFixed(3)
}

export function articleView (article: Article, tickers: string[]): ArticleView {
  return {
    title: article.title,
    url: article.url,
    source: article.source,
    publishedAt: article.publishedAt,
    summary: trimText(article.summary, SUMMARY_CHARS),
    overallSentiment: {
      score: article.overallSentimentScore,
      label: article.overallSentimentScore === null ? null : labelFor(article.overallSentimentScore)
    },
    tickerSentiment: article.tickerSentiment
      .filter(t => tickers.includes(t.ticker))
      .map(t => ({ ticker: t.ticker, score: t.score, label: t.score === null ? null : labelFor(t.score), relevance: t.relevance }))
  }
}

export function countsText (counts: LabelCounts): string {
  return SENTIMENT_LABELS.filter(l => counts[l] > 0).map(l => `${counts[l]} ${l}`).join(', ')
}

/** "Somewhat-Bullish (weighted score 0.212 over 5 articles: 1 Neutral, 4 Somewhat-Bullish)", or that nothing was scored. */
export function aggregateText (a: z.infer<typeof AggregateOutput>, scoreName: string): string {
  return a.label === null
    ? 'no scored articles'
    : `${a.label} (${scoreName} ${fixed(a.score)} over ${a.articles} articles: ${countsText(a.labelCounts)})`
}

/** " · from → to", or nothing when no article had a time. */
export function spanText (span: z.infer<typeof TimeSpanOutput>): string {
  return span.from === null || span.to === null ? '' : ` · ${span.from} → ${span.to}`
}

/** "45 s", "12 min", "3 h": a stale answer minutes old must not read "0 min old". */
export function ageText (seconds: number): string {
  if (seconds < 120) return `${seconds} s`
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`
  return `${Math.round(seconds / 3600)} h`
}

export function freshnessOf (answer: NewsAnswer): z.infer<typeof FreshnessOutput> {
  return {
    fetchedAt: answer.fetchedAt,
    ageSeconds: answer.ageSeconds,
    cached: answer.cached,
    stale: answer.stale,
    note: answer.staleReason === undefined ? null : `Stale answer (${ageText(answer.ageSeconds)} old): ${answer.staleReason}`
  }
}

/** Lines that tell the model what it must know about the answer itself: staleness and quota. */
export function noticeLines (answer: NewsAnswer): string[] {
  const lines: string[] = []
  if (answer.staleReason !== undefined) {
    lines.push(`Note: this answer is from ${answer.fetchedAt} (${ageText(answer.ageSeconds)} old) because Alpha Vantage could not be asked: ${answer.staleReason}`)
  }
  const q = answer.quota
  if (q.state === 'spent') lines.push(`Note: this server's Alpha Vantage quota for today is spent (${q.used}/${q.limit}); only cached questions can be answered until ${q.resetsAt}.`)
  else if (q.state === 'near') lines.push(`Note: ${q.used} of ${q.limit} Alpha Vantage requests used today; prefer repeating earlier questions (cached) to new ones.`)
  return lines
}

export function articleLines (a: ArticleView, index: number): string[] {
  const own = a.tickerSentiment.map(t => `${t.ticker} ${t.label ?? 'n/a'} ${fixed(t.score)} (relevance ${fixed(t.relevance)})`)
  return [
    `${index + 1}. ${a.title} (${a.source}, ${a.publishedAt ?? 'time unknown'})`,
    `   ${[...own, `overall ${a.overallSentiment.label ?? 'n/a'} ${fixed(a.overallSentiment.score)}`].join('; ')}`,
    ...(a.summary === '' ? [] : [`   ${a.summary}`]),
    ...(a.url === '' ? [] : [`   ${a.url}`])
  ]
}
