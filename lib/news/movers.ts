import type { Article } from './alpha-vantage.js'
import { labelFor, type SentimentLabel } from './sentiment.js'

/** Which tickers a feed talks about most, and how it feels about them. */

export interface TickerMentions {
  ticker: string
  /** Articles that scored the ticker (with a positive relevance). */
  articles: number
  /** Relevance-weighted mean of its sentiment scores in those articles. */
  score: number
  label: SentimentLabel
  /** Mean relevance of the ticker in those articles: 1 = the articles are about it. */
  relevance: number
}

export interface Movers {
  /** Distinct tickers scored anywhere in the feed. */
  tickersSeen: number
  /** Of those, how many reached `minArticles` and were ranked. */
  ranked: number
  minArticles: number
  mostMentioned: TickerMentions[]
  mostBullish: TickerMentions[]
  mostBearish: TickerMentions[]
}

interface Tally { weighted: number, weights: number, articles: number }

/**
 * Ranks the tickers of a feed three ways, `top` each, counting only tickers
 * scored in at least `minArticles` articles (one glowing article does not
 * make a mover): most mentioned, most bullish (positive scores, highest
 * first), most bearish (negative scores, lowest first). Ties: more articles first, then the symbol, so that the
 * same feed always ranks the same way.
 */
export function newsMovers (articles: Article[], minArticles: number, top: number): Movers {
  const tallies = new Map<string, Tally>()
  for (const article of articles) {
    for (const t of article.tickerSentiment) {
      if (t.score === null || t.relevance === null || t.relevance <= 0) continue
      let tally = tallies.get(t.ticker)
      if (tally === undefined) {
        tally = { weighted: 0, weights: 0, articles: 0 }
        tallies.set(t.ticker, tally)
      }
      tally.weighted += t.relevance * t.score
      tally.weights += t.relevance
      tally.articles++
    }
  }
  const ranked: TickerMentions[] = []
  for (const [ticker, tally] of tallies) {
    if (tally.articles < minArticles) continue
    const score = tally.weighted / tally.weights
    ranked.push({ ticker, articles: tally.articles, score, label: labelFor(score), relevance: tally.weights / tally.articles })
  }
  // Tallies are per ticker: two rows never share a symbol.
  const bySymbol = (a: TickerMentions, b: TickerMentions): number => a.ticker < b.ticker ? -1 : 1
  const byArticles = (a: TickerMentions, b: TickerMentions): number => b.articles - a.articles || bySymbol(a, b)
  return {
    tickersSeen: tallies.size,
    ranked: ranked.length,
    minArticles,
    mostMentioned: [...ranked].sort(byArticles).slice(0, top),
    // A ticker the news likes is not among the "most bearish" just because the list is short.
    mostBullish: ranked.filter(m => m.score > 0).sort((a, b) => b.score - a.score || byArticles(a, b)).slice(0, top),
    mostBearish: ranked.filter(m => m.score < 0).sort((a, b) => a.score - b.score || byArticles(a, b)).slice(0, top)
  }
}
