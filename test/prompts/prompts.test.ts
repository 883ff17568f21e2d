import t from 'tap'
import { buildApp } from '../helpers/build-app.js'
import { rpcCaller } from '../helpers/mcp-calls.js'
import { TOPICS } from '../../lib/news/arguments.js'

const ctx = await buildApp(t)
const call = await rpcCaller(ctx)
const complete = async (name: string, argument: string, value: string, context?: Record<string, string>): Promise<{ values: string[], total?: number, hasMore: boolean }> =>
  (await call('completion/complete', { ref: { type: 'ref/prompt', name }, argument: { name: argument, value }, ...(context !== undefined && { context: { arguments: context } }) })).result.completion

t.test('both prompts are listed with titles and their arguments', async t => {
  const { result } = await call('prompts/list')
  t.same(result.prompts.map((p: { name: string }) => p.name), ['sentiment_brief', 'compare_sentiment'])
  t.match(result.prompts[0], { title: 'Sentiment brief on one ticker', arguments: [{ name: 'ticker', required: true }, { name: 'topic' }, { name: 'window' }] })
  t.match(result.prompts[1], { title: 'Compare news sentiment across tickers', arguments: [{ name: 'tickers', required: true }, { name: 'window' }] })
  t.equal(ctx.upstream.hits.length, 0, 'no upstream call')
})

t.test('sentiment_brief: names the tool call to make with the given arguments', async t => {
  const { result } = await call('prompts/get', { name: 'sentiment_brief', arguments: { ticker: 'aapl', topic: 'earnings', window: '7d' } })
  t.equal(result.description, 'Sentiment brief on AAPL (Apple Inc., NASDAQ)')
  t.equal(result.messages.length, 1)
  t.equal(result.messages[0].role, 'user')
  const text: string = result.messages[0].content.text
  t.match(text, 'Call get_news_sentiment with ticker "AAPL", topics ["earnings"], timeFrom "7d"')
  t.match(text, 'news://sentiment/AAPL')
  t.match(text, 'news://methodology')
  const unlisted = (await call('prompts/get', { name: 'sentiment_brief', arguments: { ticker: 'zzzz' } })).result
  t.equal(unlisted.description, 'Sentiment brief on ZZZZ', 'a symbol not in the list passes as it is')
  t.match(unlisted.messages[0].content.text, 'Call get_news_sentiment with ticker "ZZZZ" and limit 5')
})

t.test('sentiment_brief: a company name, a bad ticker or topic is -32602 naming what to do', async t => {
  const apple = await call('prompts/get', { name: 'sentiment_brief', arguments: { ticker: 'Apple' } })
  t.equal(apple.error?.code, -32602)
  t.match(apple.error?.message, /did you mean AAPL \(Apple Inc\., NASDAQ\), APLE/)
  t.equal((await call('prompts/get', { name: 'sentiment_brief', arguments: { ticker: '$$$' } })).error?.code, -32602)
  t.match((await call('prompts/get', { name: 'sentiment_brief', arguments: { ticker: 'AAPL', topic: 'gossip' } })).error?.message, /topic must be one of blockchain/)
  t.equal((await call('prompts/get', { name: 'sentiment_brief', arguments: {} })).error?.code, -32602, 'the ticker is required')
})

t.test('compare_sentiment: 2 to 5 distinct symbols', async t => {
  const { result } = await call('prompts/get', { name: 'compare_sentiment', arguments: { tickers: 'aapl, msft,GOOGL', window: '2w' } })
  t.equal(result.description, 'News sentiment compared: AAPL, MSFT, GOOGL')
  t.match(result.messages[0].content.text, 'Call compare_news_sentiment with tickers ["AAPL","MSFT","GOOGL"] and timeFrom "2w"')
  t.notMatch((await call('prompts/get', { name: 'compare_sentiment', arguments: { tickers: 'AAPL,MSFT' } })).result.messages[0].content.text, 'timeFrom')
  for (const tickers of ['AAPL', 'AAPL, aapl', 'A,B,C,D,E,F', ' , ']) {
    t.match((await call('prompts/get', { name: 'compare_sentiment', arguments: { tickers } })).error, { code: -32602, message: /2 to 5 different symbols/ }, tickers)
  }
  t.match((await call('prompts/get', { name: 'compare_sentiment', arguments: { tickers: 'AAPL, Alphabet' } })).error, { code: -32602, message: /GOOGL/ })
})

t.test('arguments complete from the symbol list and the topic list, with no upstream call', async t => {
  const ticker = await complete('sentiment_brief', 'ticker', 'aap')
  t.equal(ticker.values[0], 'AAPL')
  t.equal(ticker.hasMore, false)
  const all = await complete('sentiment_brief', 'ticker', '')
  t.equal(all.values.length, 100, 'at most 100 values')
  t.ok((all.total as number) > 100)
  t.equal(all.hasMore, true)
  t.same((await complete('sentiment_brief', 'ticker', 'berkshire')).values, ['BRK.A', 'BRK.B'], 'words of the name')
  t.same((await complete('sentiment_brief', 'topic', 'e')).values, TOPICS.filter(x => x.startsWith('e')))
  t.same((await complete('sentiment_brief', 'window', '')).values, ['24h', '3d', '7d', '2w', '30d'])
  t.same((await complete('compare_sentiment', 'window', '3')).values, ['3d', '30d'])
  t.same((await complete('compare_sentiment', 'tickers', 'AAPL, nvd', { window: '7d' })).values[0], 'AAPL, NVDA')
  t.equal(ctx.upstream.hits.length, 0)
})
