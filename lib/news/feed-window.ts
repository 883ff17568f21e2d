import type { NewsFeed, NewsQuery } from './alpha-vantage.js'
import type { CacheEntry } from './cache.js'
import { easternStampToEpoch } from './eastern-time.js'

/**
 * One upstream call can answer many questions: a cached feed of up to 1,000
 * articles for a ticker over seven days also answers the same ticker over the
 * last day, or with fewer articles. This finds such a wider cached feed and
 * cuts the narrower answer out of it, only where that answer is exactly what
 * Alpha Vantage would have returned.
 */

/** Alpha Vantage's default `limit`: what a query without one gets. */
const DEFAULT_LIMIT = 50
/** `time_to` names a minute: the articles of that whole minute are in. */
const MINUTE_MS = 60_000

function listKey (items: string[] | undefined, upper: boolean): string {
  if (items === undefined || items.length === 0) return ''
  return items.map(i => upper ? i.toUpperCase() : i).sort().join(',')
}

/** Everything about a question but its window and limit: only feeds of the same family can answer each other. */
export function familyKey (query: NewsQuery): string {
  return `${listKey(query.tickers, true)}|${listKey(query.topics, false)}|${query.sort ?? 'LATEST'}`
}

function stamp (value: string | undefined, fallback: number): number {
  // The stamps were written by toEasternStamp: always valid.
  return value === undefined ? fallback : easternStampToEpoch(value) as number
}

/**
 * The articles of `wide` (a cached feed for `wideQuery`) that `asked` would
 * get from Alpha Vantage, or undefined when the wide feed cannot tell: the
 * asked window reaches outside it, or the wide feed hit its article limit
 * and the asked window reaches into the part it cut off.
 */
export function narrowFeed (wide: NewsFeed, wideQuery: NewsQuery, asked: NewsQuery): NewsFeed | undefined {
  const wideLimit = wideQuery.limit ?? DEFAULT_LIMIT
  const askedLimit = asked.limit ?? DEFAULT_LIMIT
  if (askedLimit > wideLimit) return undefined
  // "Up to now" is only answered by a feed that also ran up to its fetch time (and is fresh).
  if (asked.timeTo === undefined && wideQuery.timeTo !== undefined) return undefined
  if (asked.timeFrom === undefined && wideQuery.timeFrom !== undefined) return undefined
  const sameWindow = asked.timeFrom === wideQuery.timeFrom && asked.timeTo === wideQuery.timeTo
  if (sameWindow) {
    // Alpha Vantage's order is the same for any limit: the first n are the answer.
    if (wide.articles.length + wide.dropped <= askedLimit) return wide
    return { articles: wide.articles.slice(0, askedLimit), dropped: 0, bytes: 0 }
  }
  const from = stamp(asked.timeFrom, -Infinity)
  const to = asked.timeTo === undefined ? Infinity : stamp(asked.timeTo, Infinity) + MINUTE_MS - 1
  if (from < stamp(wideQuery.timeFrom, -Infinity)) return undefined
  if (wideQuery.timeTo !== undefined && to > stamp(wideQuery.timeTo, Infinity) + MINUTE_MS - 1) return undefined

  const truncated = wide.articles.length + wide.dropped >= wideLimit
  if (truncated) {
    // A full feed holds the newest (LATEST) or oldest (EARLIEST) articles of its
    // window: the asked window must stay strictly inside what it holds.
    // Articles at the boundary instant itself may have been cut, hence strict.
    const sort = wideQuery.sort ?? 'LATEST'
    if (sort === 'RELEVANCE') return undefined
    let oldest = Infinity
    let newest = -Infinity
    for (const a of wide.articles) {
      if (a.publishedAt === null) continue
      const t = Date.parse(a.publishedAt)
      if (t < oldest) oldest = t
      if (t > newest) newest = t
    }
    if (sort === 'LATEST' && !(from > oldest)) return undefined
    if (sort === 'EARLIEST' && !(to < newest)) return undefined
  }
  const articles = []
  for (const a of wide.articles) {
    if (articles.length === askedLimit) break
    if (a.publishedAt === null) continue // cannot be placed in a narrower window
    const t = Date.parse(a.publishedAt)
    if (t >= from && t <= to) articles.push(a)
  }
  // Not stored in the cache (it shares the wide feed's articles): no bytes to count.
  return { articles, dropped: 0, bytes: 0 }
}

/** Cuts kept per wide feed: relative windows move every 15 minutes, so a few suffice. */
const CUTS_PER_FEED = 16
/** Windows remembered per family. */
const WINDOWS_PER_FAMILY = 8

/**
 * Which cached feeds exist for each family of questions. It holds only keys
 * and queries (the cache holds the feeds and keeps its own bounds); a key the
 * cache no longer has is forgotten when met. The narrowed feeds are kept with
 * their wide feed (a WeakMap), so they go when the cache drops it, and a
 * repeated narrower question gets the same feed object (the responder's
 * per-feed memo then works for it too).
 */
export class WideFeedIndex {
  readonly #families = new Map<string, Map<string, NewsQuery>>()
  readonly #cuts = new WeakMap<NewsFeed, Map<string, NewsFeed | null>>()

  constructor (readonly maxFamilies: number) {}

  get families (): number {
    return this.#families.size
  }

  /** A feed for `query` was just stored under `key`. */
  remember (key: string, query: NewsQuery): void {
    const family = familyKey(query)
    let windows = this.#families.get(family)
    if (windows === undefined) {
      windows = new Map()
    } else {
      this.#families.delete(family)
      windows.delete(key)
    }
    this.#families.set(family, windows) // most recently used last
    windows.set(key, query)
    if (windows.size > WINDOWS_PER_FAMILY) windows.delete(windows.keys().next().value as string)
    if (this.#families.size > this.maxFamilies) this.#families.delete(this.#families.keys().next().value as string)
  }

  /**
   * A fresh cached feed of the same family that answers `asked`, cut to it.
   * @param askedKey the asked question's own cache key (already looked up: skipped)
   */
  async find (
    asked: NewsQuery,
    askedKey: string,
    get: (key: string) => Promise<CacheEntry<NewsFeed> | undefined>,
    fresh: (storedAt: number) => boolean
  ): Promise<{ feed: NewsFeed, storedAt: number } | undefined> {
    const windows = this.#families.get(familyKey(asked))
    if (windows === undefined) return undefined
    for (const [key, wideQuery] of [...windows]) {
      if (key === askedKey) continue
      const entry = await get(key)
      if (entry === undefined) {
        windows.delete(key)
        continue
      }
      if (!fresh(entry.storedAt)) continue
      const feed = this.#cut(entry.value, wideQuery, asked, askedKey)
      if (feed !== undefined) return { feed, storedAt: entry.storedAt }
    }
    return undefined
  }

  #cut (wide: NewsFeed, wideQuery: NewsQuery, asked: NewsQuery, askedKey: string): NewsFeed | undefined {
    let cuts = this.#cuts.get(wide)
    if (cuts === undefined) {
      cuts = new Map()
      this.#cuts.set(wide, cuts)
    }
    let cut = cuts.get(askedKey)
    if (cut === undefined) {
      cut = narrowFeed(wide, wideQuery, asked) ?? null
      cuts.set(askedKey, cut)
      if (cuts.size > CUTS_PER_FEED) cuts.delete(cuts.keys().next().value as string)
    }
    return cut ?? undefined
  }
}

/** The line that tells a model the window's oldest part may be missing, or null when the feed is complete. */
export function coverageNote (coverage: { complete: boolean, coverageFrom: string | null }, upstreamLimit: number): string | null {
  if (coverage.complete) return null
  return `Note: Alpha Vantage returned its maximum of ${upstreamLimit} articles; they reach back to ${coverage.coverageFrom ?? 'an unknown time'} only, so the window's earlier part is incomplete.`
}

/** Whether the feed may lack the window's oldest articles (Alpha Vantage stops at its limit), and from when it is whole. */
export function coverageOf (feed: NewsFeed, upstreamLimit: number): { complete: boolean, coverageFrom: string | null } {
  if (feed.articles.length + feed.dropped < upstreamLimit) return { complete: true, coverageFrom: null }
  let oldest: string | null = null
  for (const a of feed.articles) if (a.publishedAt !== null && (oldest === null || a.publishedAt < oldest)) oldest = a.publishedAt
  return { complete: false, coverageFrom: oldest }
}
