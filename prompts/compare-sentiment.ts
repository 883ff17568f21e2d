import type { FastifyInstance } from 'fastify'
import { RpcError, RpcFailure } from '../plugins/mcp.js'
import { WINDOW_SUGGESTIONS } from '../lib/news/arguments.js'
import { completeTickerList, promptTicker, shippedSymbols } from '../lib/news/symbols.js'

/** `compare_sentiment`: several tickers side by side, written up from compare_news_sentiment. */
export default async function compareSentimentPrompt (fastify: FastifyInstance): Promise<void> {
  const symbols = shippedSymbols()
  fastify.mcpPrompt({
    name: 'compare_sentiment',
    title: 'Compare news sentiment across tickers',
    description: 'Which of two to five tickers the news likes best, and how each is moving, from compare_news_sentiment',
    arguments: [
      { name: 'tickers', title: 'Tickers', description: '2 to 5 symbols, separated by commas (AAPL, MSFT, GOOGL)', required: true, complete: value => completeTickerList(symbols, value) },
      { name: 'window', title: 'Time window', description: 'How far back: 24h, 7d, 2w… (default 7d)', complete: value => WINDOW_SUGGESTIONS.filter(w => w.startsWith(value.trim())) }
    ]
  }, args => {
    const items = (args.tickers as string).split(',').map(s => s.trim()).filter(s => s !== '')
    const tickers = [...new Set(items.map(item => promptTicker(symbols, item, 'tickers')))]
    if (tickers.length < 2 || tickers.length > 5) throw new RpcFailure(RpcError.InvalidParams, 'Invalid params: tickers must name 2 to 5 different symbols, separated by commas')
    const window = args.window?.trim()
    return {
      description: `News sentiment compared: ${tickers.join(', ')}`,
      messages: [{
        role: 'user',
        content: {
          type: 'text',
          text: [
            `Compare how recent financial news feels about ${tickers.join(', ')}.`,
            `Call compare_news_sentiment with tickers ${JSON.stringify(tickers)}${window ? ` and timeFrom "${window.slice(0, 40)}"` : ''}. ` +
              'If it says the comparison would spend too much of the quota, say so and stop.',
            'Then write a short comparison: a table (ticker, label, weighted score, articles, direction), the leader and why, ' +
              'and any ticker with too few articles to judge. Describe the news; do not give investment advice.',
            '(How scores, labels and directions are computed: news://methodology.)'
          ].join('\n')
        }
      }]
    }
  })
}
