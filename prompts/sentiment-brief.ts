import type { FastifyInstance } from 'fastify'
import { RpcError, RpcFailure } from '../plugins/mcp.js'
import { TOPICS, WINDOW_SUGGESTIONS } from '../lib/news/arguments.js'
import { completeTicker, describeSymbol, promptTicker, shippedSymbols } from '../lib/news/symbols.js'

/** `sentiment_brief`: how the news feels about one ticker, written up from get_news_sentiment. */
export default async function sentimentBriefPrompt (fastify: FastifyInstance): Promise<void> {
  const symbols = shippedSymbols()
  fastify.mcpPrompt({
    name: 'sentiment_brief',
    title: 'Sentiment brief on one ticker',
    description: 'A short brief on how recent financial news feels about one stock, ETF, crypto or currency, from get_news_sentiment',
    arguments: [
      { name: 'ticker', title: 'Ticker', description: 'The symbol (AAPL, BRK.B, CRYPTO:BTC, FOREX:EUR)', required: true, complete: value => completeTicker(symbols, value) },
      { name: 'topic', title: 'Topic', description: 'Only news on this topic (a code from news://topics)', complete: value => TOPICS.filter(t => t.startsWith(value.trim().toLowerCase())) },
      { name: 'window', title: 'Time window', description: 'How far back: 24h, 7d, 2w… (default: the latest articles)', complete: value => WINDOW_SUGGESTIONS.filter(w => w.startsWith(value.trim())) }
    ]
  }, args => {
    const ticker = promptTicker(symbols, args.ticker as string, 'ticker')
    const topic = args.topic?.trim()
    if (topic !== undefined && topic !== '' && !(TOPICS as readonly string[]).includes(topic)) {
      throw new RpcFailure(RpcError.InvalidParams, `Invalid params: topic must be one of ${TOPICS.join(', ')}`)
    }
    const window = args.window?.trim()
    const entry = symbols.get(ticker)
    const call = [`ticker "${ticker}"`, ...(topic ? [`topics ["${topic}"]`] : []), ...(window ? [`timeFrom "${window.slice(0, 40)}"`] : [])].join(', ')
    return {
      description: `Sentiment brief on ${entry === undefined ? ticker : describeSymbol(entry)}`,
      messages: [{
        role: 'user',
        content: {
          type: 'text',
          text: [
            `Write a short sentiment brief on ${entry === undefined ? ticker : describeSymbol(entry)} from recent financial news.`,
            `Call get_news_sentiment with ${call} and limit 5. Then write, in at most 150 words:`,
            '1. The overall label and relevance-weighted score, with the number of articles and the time span they cover.',
            '2. The two or three most relevant stories, each in one line with how it leans.',
            '3. What in the news could change the picture.',
            'Say so if the answer was served stale or the quota is nearly spent. Describe the news; do not give investment advice.',
            `(How scores and labels are computed: news://methodology. The latest figures are also readable as the resource news://sentiment/${ticker}.)`
          ].join('\n')
        }
      }]
    }
  })
}
