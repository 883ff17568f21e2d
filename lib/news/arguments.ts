import { z } from 'zod'
import { easternStampToEpoch, toEasternStamp } from './eastern-time.js'
import type { NewsQuery } from './alpha-vantage.js'

/** Stocks (AAPL, BRK.B, RDS-A), crypto (CRYPTO:BTC) and currencies (FOREX:USD), as Alpha Vantage names them. */
export const TICKER = /^(?:(?:CRYPTO|FOREX):[A-Za-z0-9]{2,10}|[A-Za-z0-9]{1,10}(?:[.-][A-Za-z0-9]{1,4})?)$/i

export const Ticker = z.string().trim()
  .regex(TICKER, 'must be a ticker symbol such as AAPL, BRK.B, CRYPTO:BTC or FOREX:USD')
  .transform(s => s.toUpperCase())

/** Alpha Vantage's 15 NEWS_SENTIMENT topic codes. */
export const TOPICS = [
  'blockchain', 'earnings', 'ipo', 'mergers_and_acquisitions', 'financial_markets',
  'economy_fiscal', 'economy_monetary', 'economy_macro', 'energy_transportation', 'finance',
  'life_sciences', 'manufacturing', 'real_estate', 'retail_wholesale', 'technology'
] as const

/** Time windows offered when completing a prompt's window (any relative time or ISO date the tools take works). */
export const WINDOW_SUGGESTIONS = ['24h', '3d', '7d', '2w', '30d'] as const

export const Topic = z.enum(TOPICS)
export const Sort = z.enum(['LATEST', 'EARLIEST', 'RELEVANCE'])

const RELATIVE = /^(\d{1,4})\s*(m|min|h|d|w)$/i
const ISO = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i
const UNIT_MS: Record<string, number> = { m: 60_000, min: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }
/** Relative times round down to this step, so "7d" asked a minute apart is the same (cached) question. */
const RELATIVE_STEP_MS = 15 * 60_000

function isCalendarDate (ymd: string): boolean {
  const [y, m, d] = ymd.split('-').map(Number) as [number, number, number]
  const date = new Date(Date.UTC(y, m - 1, d))
  return date.getUTCMonth() === m - 1 && date.getUTCDate() === d
}

/** A point in time, as ISO 8601 (UTC when no zone is given), relative ("7d", "24h", "90m", "2w") or Alpha Vantage's YYYYMMDDTHHMM. */
export function parseTime (value: string, now: number): number | string {
  const relative = RELATIVE.exec(value)
  if (relative !== null) {
    const ago = Number(relative[1]) * (UNIT_MS[(relative[2] as string).toLowerCase()] as number)
    return Math.floor((now - ago) / RELATIVE_STEP_MS) * RELATIVE_STEP_MS
  }
  // Date.parse takes 2024-02-30 for March 1: check the calendar date first.
  if (ISO.test(value) && isCalendarDate(value.slice(0, 10))) {
    const hasZone = /(?:Z|[+-]\d{2}:?\d{2})$/i.test(value) && value.length > 10
    const epoch = Date.parse(hasZone || value.length === 10 ? value : `${value.replace(' ', 'T')}Z`)
    if (Number.isFinite(epoch)) return epoch
  }
  const stamp = easternStampToEpoch(value)
  if (stamp !== null) return stamp
  return 'must be an ISO 8601 time (2024-05-01 or 2024-05-01T13:30Z), a relative time (90m, 24h, 7d, 2w), or YYYYMMDDTHHMM'
}

export const TimeArg = z.string().trim().max(40).transform((value, ctx) => {
  const parsed = parseTime(value, Date.now())
  if (typeof parsed === 'string') {
    ctx.addIssue({ code: 'custom', message: parsed })
    return z.NEVER
  }
  return parsed
})

export const Limit = z.number().int().min(1).max(50).default(5)
  .describe('How many articles to list, most relevant first (1-50, default 5; the aggregate always covers every article found)')

export const timeFromDescription = 'Only articles published at or after this time: ISO 8601 (2024-05-01, 2024-05-01T13:30Z) or relative to now (24h, 7d, 2w)'
export const timeToDescription = 'Only articles published at or before this time (same forms as timeFrom)'

/** Cross-argument checks shared by the news tools; each issue names its argument. */
export function checkWindow (args: { timeFrom?: number, timeTo?: number }, ctx: z.RefinementCtx): void {
  const now = Date.now()
  if (args.timeFrom !== undefined && args.timeFrom > now) {
    ctx.addIssue({ code: 'custom', path: ['timeFrom'], message: 'is in the future' })
  }
  if (args.timeFrom !== undefined && args.timeTo !== undefined && args.timeFrom >= args.timeTo) {
    ctx.addIssue({ code: 'custom', path: ['timeTo'], message: 'must be later than timeFrom' })
  }
}

/**
 * Always Alpha Vantage's maximum upstream: one call (one unit of the daily
 * quota) then serves every `limit`, the aggregates over the whole window, the
 * trend, the movers, and narrower windows cut from the cached feed.
 */
export const UPSTREAM_LIMIT = 1000

export function toNewsQuery (
  args: { topics?: string[], timeFrom?: number, timeTo?: number, sort: NewsQuery['sort'] },
  tickers: string[] | undefined,
  topics: string[] | undefined = args.topics
): NewsQuery {
  // Plain assignments: this runs on every call, cache hits included.
  const query: NewsQuery = { sort: args.sort, limit: UPSTREAM_LIMIT }
  if (tickers !== undefined) query.tickers = tickers
  if (topics !== undefined) query.topics = topics
  if (args.timeFrom !== undefined) query.timeFrom = toEasternStamp(args.timeFrom)
  if (args.timeTo !== undefined) query.timeTo = toEasternStamp(args.timeTo)
  return query
}

/**
 * The feed names topics for people ("Economy - Monetary", "Retail & Wholesale",
 * "Real Estate & Construction"); this says whether such a name is the topic code.
 */
export function topicMatches (code: string, displayName: string): boolean {
  // "Mergers & Acquisitions" normalises to mergers_acquisitions: drop the
  // code's "and" to compare. A longer display name matches on a whole word
  // only ("real_estate_construction" is real_estate; "financial_markets" is not finance).
  const normal = displayName.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_|_$/g, '')
  const bare = code.replace(/_and_/g, '_')
  return normal === code || normal === bare || normal.startsWith(`${bare}_`)
}

/** The start of a window left to its default (a relative time such as "7d"), rounded as a relative timeFrom is, so it hits the same cache entry. */
export function defaultFrom (relative: string, now: number): number {
  return parseTime(relative, now) as number
}

/** The window of a tool with a default start: [from, to], `to` being now when not given. */
export function windowOf (args: { timeFrom?: number, timeTo?: number }, relativeDefault: string, now: number): { from: number, to: number } {
  return { from: args.timeFrom ?? defaultFrom(relativeDefault, now), to: args.timeTo ?? now }
}
