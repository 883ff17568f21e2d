import type { FastifyInstance } from 'fastify'
import { STEADY_BELOW, HOURLY_UP_TO_MS } from '../lib/news/trend.js'

export const METHODOLOGY_URI = 'news://methodology'

/**
 * How the figures of every news tool are computed, as the code in lib/news
 * computes them (sentiment.ts, trend.ts, movers.ts, compare.ts, service.ts).
 * The thresholds are interpolated from the code where it names them.
 */
export const METHODOLOGY = `# How the news sentiment figures are computed

Every figure comes from Alpha Vantage's NEWS_SENTIMENT feed. Each article carries an overall
sentiment score, and for each ticker it mentions a **ticker sentiment score** (−1 bearish to +1 bullish)
and a **relevance score** (0 to 1: how much the article is about that ticker).

## Labels

Labels are recomputed from the scores with Alpha Vantage's documented thresholds (its own labels
do not always agree with its definition and are spelled two ways):

| Score | Label |
|---|---|
| ≤ −0.35 | Bearish |
| −0.35 < score ≤ −0.15 | Somewhat-Bearish |
| −0.15 < score < 0.15 | Neutral |
| 0.15 ≤ score < 0.35 | Somewhat-Bullish |
| ≥ 0.35 | Bullish |

## A ticker's aggregate (get_news_sentiment, compare_news_sentiment, news://sentiment/{ticker})

The **relevance-weighted mean** of the ticker's sentiment scores:

    score = Σ (relevance × ticker score) / Σ relevance

over the articles that scored the ticker with a relevance above 0 (articles without a score or
relevance for it are left out). Its label follows the table above; \`labelCounts\` counts the label
of each contributing article's own ticker score. The aggregate always covers every article
Alpha Vantage returned for the question (up to 1,000), not only the \`limit\` articles listed; those
are the most relevant to the asked tickers first (an article's highest relevance to any of them),
in feed order on a tie.

## Topic news (get_market_news)

Without a ticker, the aggregate is the **plain mean** of the articles' overall sentiment scores
(every article with a score counts once).

## Trend (get_sentiment_trend) and direction (compare_news_sentiment)

The window is cut into buckets: hours for windows up to ${HOURLY_UP_TO_MS / 3_600_000} hours, US Eastern days beyond
(Alpha Vantage's clock). Each bucket has the relevance-weighted score of its articles. The first and
the last half of the buckets (the middle one left out when their number is odd) each get the
weighted score of all their articles; **change** = last half − first half. A change smaller than
${STEADY_BELOW} either way is **steady**, otherwise **improving** or **worsening**. The peak is the bucket with
the most articles (the earliest on a tie).

## Movers (get_news_movers)

Every ticker scored in the feed is tallied (relevance-weighted score, articles, mean relevance).
Only tickers scored in at least \`minArticles\` articles (default 3) are ranked: most mentioned
(more articles first), most bullish (positive scores, highest first) and most bearish (negative
scores, lowest first); ties go to more articles, then the symbol.

## Comparisons (compare_news_sentiment)

Each ticker is asked on its own (not Alpha Vantage's "articles mentioning all of them"), so each
row is that ticker's aggregate and direction over the window. Rows rank most bullish first; a
comparison that would spend the day's last upstream calls is refused.

## Freshness and quota

Answers are cached and shared by every user: a question asked again within the cache's lifetime,
or narrower than a fresh cached one (fewer topics, a shorter window), costs no upstream call.
When Alpha Vantage fails, the last good answer is served marked **stale**, with the reason. The
server's daily quota is shared; results say when it is nearly or entirely spent.
`

export default async function methodologyResource (fastify: FastifyInstance): Promise<void> {
  fastify.mcpResource({
    uri: METHODOLOGY_URI,
    name: 'methodology',
    title: 'How sentiment is computed',
    description: 'How the aggregate score, the relevance weights, the labels, trends and movers are computed',
    mimeType: 'text/markdown',
    size: Buffer.byteLength(METHODOLOGY),
    annotations: { audience: ['user', 'assistant'], priority: 0.5 }
  }, uri => ({ contents: [{ uri, mimeType: 'text/markdown', text: METHODOLOGY }] }))
}
