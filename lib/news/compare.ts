import type { NewsFeed } from './alpha-vantage.js'
import { aggregateFor, timeSpanOf, type TickerAggregate, type TimeSpan } from './sentiment.js'
import { chooseBucketSize, sentimentTrend, type Direction } from './trend.js'

/** Several tickers side by side, each from its own feed (not Alpha Vantage's AND of a ticker list). */

export interface ComparisonRow extends TickerAggregate {
  /** From the first to the last half of the window, as get_sentiment_trend measures it. */
  change: number | null
  direction: Direction | null
  timeSpan: TimeSpan
}

export function comparisonRow (ticker: string, feed: NewsFeed, fromMs: number, toMs: number): ComparisonRow {
  const trend = sentimentTrend(feed.articles, ticker, fromMs, toMs, chooseBucketSize(fromMs, toMs, 'auto'))
  return { ...aggregateFor(ticker, feed.articles), change: trend.change, direction: trend.direction, timeSpan: timeSpanOf(feed.articles) }
}

/** Most bullish first; on a tie more articles first, then the symbol. Rows without a score go last. */
export function rankComparison<R extends ComparisonRow> (rows: R[]): R[] {
  return rows.sort((a, b) => (b.score ?? -Infinity) - (a.score ?? -Infinity) || b.articles - a.articles || (a.ticker < b.ticker ? -1 : 1)) // the tickers are distinct
}

export interface CallPlan {
  /** Upstream calls the comparison needs: one per ticker not answered from the cache. */
  needed: number
  cached: string[]
  remaining: number
  /** Why the comparison must not run, or null. */
  refusal: string | null
}

/**
 * A comparison may not take the day's last upstream calls: it would leave the
 * server (every other question of every user) with none, for one answer.
 */
export function planCalls (tickers: string[], cached: boolean[], remaining: number, resetsAt: string): CallPlan {
  const cachedTickers = tickers.filter((_, i) => cached[i])
  const needed = tickers.length - cachedTickers.length
  let refusal: string | null = null
  if (needed > 0 && needed >= remaining) {
    const cost = `${needed} Alpha Vantage call${needed === 1 ? '' : 's'} (one per ticker${cachedTickers.length > 0 ? `; ${cachedTickers.join(', ')} cached` : ''})`
    refusal = remaining === 0
      ? `Comparing ${tickers.join(', ')} needs ${cost}, and none is left today; the quota starts again at ${resetsAt}. Tickers asked about recently are answered from the cache.`
      : `Comparing ${tickers.join(', ')} needs ${cost}, and only ${remaining} ${remaining === 1 ? 'is' : 'are'} left today: that would exhaust the day's quota for everyone. ` +
        `${remaining === 1 ? 'Compare only cached tickers' : `Compare fewer tickers (at most ${remaining - 1} not cached)`}, or ask again after ${resetsAt}.`
  }
  return { needed, cached: cachedTickers, remaining, refusal }
}
