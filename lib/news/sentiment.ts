import type { Article } from './alpha-vantage.js'

export const SENTIMENT_LABELS = ['Bearish', 'Somewhat-Bearish', 'Neutral', 'Somewhat-Bullish', 'Bullish'] as const
export type SentimentLabel = typeof SENTIMENT_LABELS[number]

/**
 * Alpha Vantage's documented thresholds. Its own labels do not always agree
 * with its definition text (and it writes both `Somewhat-Bullish` and
 * `Somewhat_Bullish`), so labels are recomputed from the scores.
 */
export function labelFor (score: number): SentimentLabel {
  if (score <= -0.35) return 'Bearish'
  if (score <= -0.15) return 'Somewhat-Bearish'
  if (score < 0.15) return 'Neutral'
  if (score < 0.35) return 'Somewhat-Bullish'
  return 'Bullish'
}

export type LabelCounts = Record<SentimentLabel, number>

export interface TickerAggregate {
  ticker: string
  /** Relevance-weighted mean of the ticker's sentiment scores; null when no article scored it. */
  score: number | null
  label: SentimentLabel | null
  /** Articles that scored this ticker (with a positive relevance). */
  articles: number
  labelCounts: LabelCounts
}

export interface TimeSpan {
  from: string | null
  to: string | null
}

function emptyCounts (): LabelCounts {
  return { Bearish: 0, 'Somewhat-Bearish': 0, Neutral: 0, 'Somewhat-Bullish': 0, Bullish: 0 }
}

/** Σ(relevance × score) / Σ(relevance) over the articles that scored the ticker. */
export function aggregateFor (ticker: string, articles: Article[]): TickerAggregate {
  let weighted = 0
  let weights = 0
  let scored = 0
  const labelCounts = emptyCounts()
  for (const article of articles) {
    const own = article.tickerSentiment.find(t => t.ticker === ticker)
    if (own === undefined || own.score === null || own.relevance === null || own.relevance <= 0) continue
    weighted += own.relevance * own.score
    weights += own.relevance
    scored++
    labelCounts[labelFor(own.score)]++
  }
  const score = weights > 0 ? weighted / weights : null
  return { ticker, score, label: score === null ? null : labelFor(score), articles: scored, labelCounts }
}

/** The overall (not per-ticker) sentiment: a plain mean, for topic queries. */
export function overallAggregate (articles: Article[]): Omit<TickerAggregate, 'ticker'> {
  let sum = 0
  let scored = 0
  const labelCounts = emptyCounts()
  for (const article of articles) {
    if (article.overallSentimentScore === null) continue
    sum += article.overallSentimentScore
    scored++
    labelCounts[labelFor(article.overallSentimentScore)]++
  }
  const score = scored > 0 ? sum / scored : null
  return { score, label: score === null ? null : labelFor(score), articles: scored, labelCounts }
}

export function timeSpanOf (articles: Article[]): TimeSpan {
  let from: string | null = null
  let to: string | null = null
  for (const { publishedAt } of articles) {
    if (publishedAt === null) continue
    if (from === null || publishedAt < from) from = publishedAt
    if (to === null || publishedAt > to) to = publishedAt
  }
  return { from, to }
}

/** The ticker's relevance in an article (0 when not mentioned), for "most relevant first". */
export function relevanceTo (tickers: string[], article: Article): number {
  let best = 0
  for (const t of article.tickerSentiment) {
    if (tickers.includes(t.ticker) && t.relevance !== null && t.relevance > best) best = t.relevance
  }
  return best
}
