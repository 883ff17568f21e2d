import type { Article } from './alpha-vantage.js'
import { easternDate, easternIso, nextEasternDay, startOfEasternDay } from './eastern-time.js'
import { labelFor, type SentimentLabel } from './sentiment.js'
import { fixed } from './format.js'

/**
 * One ticker's sentiment over time, in US Eastern days (Alpha Vantage's own
 * clock: a "day" of news is a New York day, 23 or 25 hours long when DST
 * switches) or in hours (every UTC hour boundary is an Eastern one, so hours
 * are plain 60-minute spans, and the repeated 01:00 of November is two buckets
 * told apart by their offset).
 */

export type BucketSize = 'hour' | 'day'

const HOUR_MS = 3_600_000
/** Windows up to this long get hourly buckets when the caller leaves the choice to us. */
export const HOURLY_UP_TO_MS = 48 * HOUR_MS
/** Longest windows per bucket size (at most 73 hourly or 92 daily buckets). */
export const MAX_WINDOW_MS: Record<BucketSize, number> = { hour: 72 * HOUR_MS, day: 90 * 24 * HOUR_MS }
/** A change of the weighted score smaller than this (either way) reads as steady. */
export const STEADY_BELOW = 0.05

export type Direction = 'improving' | 'worsening' | 'steady'

export interface TrendBucket {
  /** The Eastern date (`2024-03-10`) or the Eastern hour with its offset (`2024-03-10T03:00-04:00`). */
  period: string
  /** ISO 8601 UTC, inclusive. */
  start: string
  /** ISO 8601 UTC, exclusive. */
  end: string
  articles: number
  score: number | null
  label: SentimentLabel | null
}

export interface Part {
  /** Buckets in this part. */
  buckets: number
  articles: number
  score: number | null
  label: SentimentLabel | null
}

export interface Trend {
  ticker: string
  bucketSize: BucketSize
  buckets: TrendBucket[]
  whole: Part
  /** The first and the last half of the buckets (the middle one left out when their number is odd). */
  firstPart: Part
  lastPart: Part
  /** lastPart.score − firstPart.score; null when either part has no scored article. */
  change: number | null
  direction: Direction | null
  /** The bucket with the most articles (the earliest on a tie); null when no bucket has any. */
  peak: TrendBucket | null
  /** Articles in the feed outside the window or without a time (not bucketed). */
  outside: number
}

export function chooseBucketSize (fromMs: number, toMs: number, asked: BucketSize | 'auto'): BucketSize {
  if (asked !== 'auto') return asked
  return toMs - fromMs <= HOURLY_UP_TO_MS ? 'hour' : 'day'
}

/** The bucket boundaries that cover [from, to]: starts, plus the end of the last one. */
export function bucketEdges (fromMs: number, toMs: number, size: BucketSize): number[] {
  const edges: number[] = []
  let start = size === 'day' ? startOfEasternDay(fromMs) : Math.floor(fromMs / HOUR_MS) * HOUR_MS
  edges.push(start)
  while (start <= toMs) {
    start = size === 'day' ? nextEasternDay(start) : start + HOUR_MS
    edges.push(start)
  }
  return edges
}

interface Sum { weighted: number, weights: number, articles: number }

function part (sums: Sum[]): Part {
  let weighted = 0
  let weights = 0
  let articles = 0
  for (const s of sums) {
    weighted += s.weighted
    weights += s.weights
    articles += s.articles
  }
  const score = weights > 0 ? weighted / weights : null
  return { buckets: sums.length, articles, score, label: score === null ? null : labelFor(score) }
}

/** ISO 8601 UTC to the second, as publishedAt is written. */
export function isoSeconds (ms: number): string {
  return new Date(ms).toISOString().replace('.000Z', 'Z')
}

/** The articles' relevance-weighted sentiment for `ticker` in buckets over [from, to]. */
export function sentimentTrend (articles: Article[], ticker: string, fromMs: number, toMs: number, size: BucketSize): Trend {
  const edges = bucketEdges(fromMs, toMs, size)
  const sums: Sum[] = Array.from({ length: edges.length - 1 }, () => ({ weighted: 0, weights: 0, articles: 0 }))
  let outside = 0
  for (const article of articles) {
    const t = article.publishedAt === null ? NaN : Date.parse(article.publishedAt)
    if (!(t >= fromMs && t <= toMs)) {
      outside++
      continue
    }
    const own = article.tickerSentiment.find(s => s.ticker === ticker)
    if (own === undefined || own.score === null || own.relevance === null || own.relevance <= 0) continue
    // The last edge at or before t (binary search: up to 92 buckets, 1,000 articles).
    let lo = 0
    let hi = sums.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if ((edges[mid] as number) <= t) lo = mid
      else hi = mid - 1
    }
    const sum = sums[lo] as Sum
    sum.weighted += own.relevance * own.score
    sum.weights += own.relevance
    sum.articles++
  }
  const buckets = sums.map((s, i): TrendBucket => {
    const start = edges[i] as number
    const score = s.weights > 0 ? s.weighted / s.weights : null
    return {
      period: size === 'day' ? easternDate(start) : easternIso(start),
      start: isoSeconds(start),
      end: isoSeconds(edges[i + 1] as number),
      articles: s.articles,
      score,
      label: score === null ? null : labelFor(score)
    }
  })
  const half = Math.floor(sums.length / 2)
  const firstPart = part(sums.slice(0, half))
  const lastPart = part(sums.slice(sums.length - half))
  const change = firstPart.score === null || lastPart.score === null ? null : lastPart.score - firstPart.score
  let peak: TrendBucket | null = null
  for (const b of buckets) if (b.articles > 0 && (peak === null || b.articles > peak.articles)) peak = b
  return {
    ticker,
    bucketSize: size,
    buckets,
    whole: part(sums),
    firstPart,
    lastPart,
    change,
    direction: change === null ? null : change >= STEADY_BELOW ? 'improving' : change <= -STEADY_BELOW ? 'worsening' : 'steady',
    peak,
    outside
  }
}

export function signed (n: number): string {
  return `${n >= 0 ? '+' : ''}${n.toFixed(3)}`
}

export function partText (p: Part): string {
  return p.score === null ? 'no articles' : `${p.label as string} ${fixed(p.score)} over ${p.articles} article${p.articles === 1 ? '' : 's'}`
}

/** "improving (+0.182): first 3 days Somewhat-Bullish 0.160 over 12 articles → last 3 days …", or why there is no change. */
export function changeText (trend: Trend): string {
  const unit = (n: number): string => `${n} ${trend.bucketSize}${n === 1 ? '' : 's'}`
  const parts = `first ${unit(trend.firstPart.buckets)} ${partText(trend.firstPart)} → last ${unit(trend.lastPart.buckets)} ${partText(trend.lastPart)}`
  if (trend.change === null) return `no change measurable (${trend.buckets.length === 1 ? 'one bucket only' : parts})`
  return `${trend.direction as string} (${signed(trend.change)}): ${parts}`
}
