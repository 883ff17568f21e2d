import type { LightMyRequestResponse } from 'fastify'
import { MCP_HEADERS, openSession, type TestContext } from './build-app.js'
import { newsFixture } from './fake-alpha-vantage.js'
import { referenceIso } from './eastern-reference.js'
import { sseMessages } from './mcp-app.js'

/** What a tools/call answered: the JSON-RPC error, or the result. */
export interface ToolAnswer {
  res: LightMyRequestResponse
  error?: { code: number, message: string }
  result?: {
    isError?: boolean
    content: Array<{ type: string, text: string }>
    structuredContent?: any
  }
  /** The first text block ('' when there is none). */
  text: string
  /** Notifications sent before the answer (the answer then streams as SSE): MCP log messages, progress. */
  notifications: Array<{ method: string, params?: any }>
}

let nextId = 100

/** A session on the app, and a function that calls a tool in it over inject. */
export async function toolCaller (ctx: TestContext, protocolVersion = '2025-06-18'): Promise<(name: string, args: unknown) => Promise<ToolAnswer>> {
  const session = await openSession(ctx, protocolVersion)
  return async (name, args) => {
    const res = await ctx.app.inject({
      method: 'POST',
      url: '/mcp',
      headers: { ...MCP_HEADERS, authorization: `Bearer ${ctx.token}`, 'mcp-session-id': session, 'mcp-protocol-version': protocolVersion },
      payload: { jsonrpc: '2.0', id: nextId++, method: 'tools/call', params: { name, arguments: args } }
    })
    // Log messages before the answer make it stream (SSE): the response is its last message.
    const messages = String(res.headers['content-type']).startsWith('text/event-stream') ? sseMessages(res.body) : [res.json()]
    const body = messages.find(m => 'id' in m) as Record<string, any>
    const notifications = messages.filter(m => !('id' in m)) as ToolAnswer['notifications']
    return { res, error: body.error, result: body.result, text: body.result?.content?.[0]?.text ?? '', notifications }
  }
}

/** Sentiment labels by Alpha Vantage's documented thresholds, written out again for the tests. */
export function referenceLabel (score: number): string {
  if (score <= -0.35) return 'Bearish'
  if (score <= -0.15) return 'Somewhat-Bearish'
  if (score < 0.15) return 'Neutral'
  if (score < 0.35) return 'Somewhat-Bullish'
  return 'Bullish'
}

export function emptyLabelCounts (): Record<string, number> {
  return { Bearish: 0, 'Somewhat-Bearish': 0, Neutral: 0, 'Somewhat-Bullish': 0, Bullish: 0 }
}

type RawArticle = Record<string, any>

/** The fixture's usable articles (the ones with a title), as the feed lists them. */
export function fixtureArticles (): RawArticle[] {
  return newsFixture.feed.filter(a => typeof a.title === 'string' && a.title.trim() !== '')
}

function num (value: unknown): number | null {
  if (typeof value === 'number') return value
  if (typeof value !== 'string' || value.trim() === '') return null
  return Number(value)
}

/** A ticker's entry in a raw article, with its numbers read. */
export function rawTickerEntry (article: RawArticle, ticker: string): { relevance: number | null, score: number | null } | undefined {
  const entry = (article.ticker_sentiment as RawArticle[] | undefined)?.find(t => t.ticker === ticker)
  return entry === undefined ? undefined : { relevance: num(entry.relevance_score), score: num(entry.ticker_sentiment_score) }
}

/** The figures the news tools must report for the fixture, computed here from the raw JSON. */
export function expectedTickerAggregate (ticker: string): { score: number | null, label: string | null, articles: number, labelCounts: Record<string, number> } {
  let weighted = 0
  let weights = 0
  let articles = 0
  const labelCounts = emptyLabelCounts()
  for (const article of fixtureArticles()) {
    const entry = rawTickerEntry(article, ticker)
    if (entry?.score == null || entry.relevance == null || entry.relevance <= 0) continue
    weighted += entry.relevance * entry.score
    weights += entry.relevance
    articles++
    labelCounts[referenceLabel(entry.score)]!++
  }
  const score = weights > 0 ? weighted / weights : null
  return { score, label: score === null ? null : referenceLabel(score), articles, labelCounts }
}

export function expectedOverallAggregate (): { score: number | null, label: string | null, articles: number, labelCounts: Record<string, number> } {
  const scores = fixtureArticles().map(a => num(a.overall_sentiment_score)).filter((s): s is number => s !== null)
  const labelCounts = emptyLabelCounts()
  for (const s of scores) labelCounts[referenceLabel(s)]!++
  const score = scores.reduce((sum, s) => sum + s, 0) / scores.length
  return { score, label: referenceLabel(score), articles: scores.length, labelCounts }
}

export function expectedTimeSpan (): { from: string, to: string } {
  const times = fixtureArticles().map(a => referenceIso(a.time_published)).filter((s): s is string => s !== null)
    .map(iso => Date.parse(iso))
  const iso = (ms: number): string => new Date(ms).toISOString().replace('.000Z', 'Z')
  return { from: iso(Math.min(...times)), to: iso(Math.max(...times)) }
}
