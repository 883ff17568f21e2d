import { readFileSync } from 'node:fs'
import { easternWallToEpoch, hoursBehindUtc, referenceIso } from './eastern-reference.js'
import { referenceLabel } from './news-tools.js'

/**
 * The figures get_sentiment_trend, get_news_movers and compare_news_sentiment
 * must report, computed again from the raw fixtures with the rule-based
 * Eastern clock of eastern-reference.ts (no Intl, no code of lib/news).
 */

export type RawArticle = Record<string, any>

export function loadFixture (name: string): { items: string, feed: RawArticle[] } {
  return JSON.parse(readFileSync(new URL(`../fixtures/${name}`, import.meta.url), 'utf8'))
}

const HOUR = 3_600_000

/** A ticker's usable (relevance > 0, scored) entry in a raw article, with the article's instant. */
export function scoredEntries (feed: RawArticle[], ticker: string): Array<{ at: number, relevance: number, score: number }> {
  const out = []
  for (const a of feed) {
    const iso = referenceIso(a.time_published)
    const e = (a.ticker_sentiment as RawArticle[]).find(t => t.ticker === ticker)
    if (iso === null || e === undefined) continue
    const relevance = Number(e.relevance_score)
    if (!(relevance > 0)) continue
    out.push({ at: Date.parse(iso), relevance, score: Number(e.ticker_sentiment_score) })
  }
  return out
}

export function weighted (entries: Array<{ relevance: number, score: number }>): number | null {
  const w = entries.reduce((s, e) => s + e.relevance, 0)
  return w > 0 ? entries.reduce((s, e) => s + e.relevance * e.score, 0) / w : null
}

function pad (n: number): string {
  return String(n).padStart(2, '0')
}

/** The Eastern calendar date of an instant, by the DST rule. */
export function referenceDate (at: number): string {
  return new Date(at - hoursBehindUtc(at) * HOUR).toISOString().slice(0, 10)
}

/** Eastern hour label with offset: 2024-11-03T01:00-05:00. */
export function referenceHour (at: number): string {
  const behind = hoursBehindUtc(at)
  return `${new Date(at - behind * HOUR).toISOString().slice(0, 16)}-${pad(behind)}:00`
}

export interface ExpectedBucket { period: string, start: string, end: string, articles: number, score: number | null, label: string | null }

const iso = (ms: number): string => new Date(ms).toISOString().replace('.000Z', 'Z')

/** Buckets over [from, to], by Eastern calendar day (walking the dates) or by UTC hour. */
export function expectedBuckets (feed: RawArticle[], ticker: string, from: number, to: number, size: 'day' | 'hour'): ExpectedBucket[] {
  const entries = scoredEntries(feed, ticker).filter(e => e.at >= from && e.at <= to)
  const spans: Array<{ period: string, start: number, end: number }> = []
  if (size === 'day') {
    let [y, m, d] = referenceDate(from).split('-').map(Number) as [number, number, number]
    for (;;) {
      const start = easternWallToEpoch(y, m, d, 0, 0)
      if (start > to) break
      const next = new Date(Date.UTC(y, m - 1, d + 1))
      const end = easternWallToEpoch(next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate(), 0, 0)
      spans.push({ period: `${y}-${pad(m)}-${pad(d)}`, start, end });
      [y, m, d] = [next.getUTCFullYear(), next.getUTCMonth() + 1, next.getUTCDate()]
    }
  } else {
    for (let start = from - (from % HOUR); start <= to; start += HOUR) spans.push({ period: referenceHour(start), start, end: start + HOUR })
  }
  return spans.map(s => {
    const inside = entries.filter(e => e.at >= s.start && e.at < s.end)
    const score = weighted(inside)
    return { period: s.period, start: iso(s.start), end: iso(s.end), articles: inside.length, score, label: score === null ? null : referenceLabel(score) }
  })
}
