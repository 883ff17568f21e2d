import t from 'tap'
import { RpcError } from '../../../lib/mcp/protocol.js'
import {
  SymbolIndex, shippedSymbols, completeTicker, completeTickerList, describeSymbol, promptTicker, MAX_CANDIDATES
} from '../../../lib/news/symbols.js'
import { TICKER } from '../../../lib/news/arguments.js'

const symbols = shippedSymbols()

t.test('the shipped list: a few hundred symbols, each a ticker the tools accept, none twice', async t => {
  t.ok(symbols.size >= 300, `${symbols.size} symbols`)
  t.equal(shippedSymbols(), symbols, 'read once')
  const all = symbols.search('')
  t.equal(all.length, symbols.size)
  t.equal(new Set(all.map(e => e.ticker)).size, all.length, 'no symbol twice')
  for (const e of all) {
    if (!TICKER.test(e.ticker)) t.fail(`${e.ticker} is not a ticker the tools accept`)
    if (!['stock', 'etf', 'crypto', 'forex'].includes(e.kind)) t.fail(`${e.ticker}: kind ${e.kind}`)
  }
  t.same(symbols.get('aapl'), { ticker: 'AAPL', name: 'Apple Inc.', exchange: 'NASDAQ', kind: 'stock' })
  t.equal(symbols.get('SPY')?.kind, 'etf')
  t.equal(symbols.get('CRYPTO:BTC')?.exchange, undefined, 'an unknown exchange stays unknown')
  t.equal(symbols.get('NOPE'), undefined)
})

t.test('search: exact symbol, then symbol prefix, then words of the name, case-insensitive', async t => {
  const tickers = (q: string): string[] => symbols.search(q).map(e => e.ticker)
  t.equal(tickers('aapl')[0], 'AAPL')
  t.same(tickers('MSF'), ['MSFT'])
  t.same(tickers('goog').slice(0, 2), ['GOOG', 'GOOGL'])
  t.ok(tickers('micro').includes('MSFT'), 'a word of the name')
  t.ok(tickers('bank of am').includes('BAC'), 'every typed word starts a word of the name')
  t.notOk(tickers('bank of am').includes('BK'))
  t.equal(tickers('brk')[0], 'BRK.A')
  t.same(tickers('zzzz'), [])
  t.same(tickers('  '), symbols.search('').map(e => e.ticker), 'blank: the whole list, largest first')
  t.equal(tickers('A')[0], 'A', 'the exact symbol before longer ones')
  t.same(tickers('&'), [], 'punctuation alone matches no name')
})

t.test('resolve: a symbol is itself; a name or a share-class base gives candidates; anything else is unknown', async t => {
  t.match(symbols.resolve(' msft '), { kind: 'exact', entry: { ticker: 'MSFT' } })
  const apple = symbols.resolve('Apple')
  t.equal(apple.kind, 'candidates')
  t.same(apple.kind === 'candidates' && apple.candidates.map(c => c.ticker), ['AAPL', 'APLE'])
  const brk = symbols.resolve('BRK')
  t.same(brk.kind === 'candidates' && brk.candidates.map(c => c.ticker), ['BRK.A', 'BRK.B'])
  const alphabet = symbols.resolve('alphabet')
  t.same(alphabet.kind === 'candidates' && alphabet.candidates.map(c => c.ticker), ['GOOGL', 'GOOG'])
  const mcd = symbols.resolve("McDonald's")
  t.same(mcd.kind === 'candidates' && mcd.candidates.map(c => c.ticker), ['MCD'], 'apostrophes do not matter')
  t.same(symbols.resolve('ZZZZ'), { kind: 'unknown' }, 'a symbol the list does not hold')
  t.same(symbols.resolve('Microso'), { kind: 'unknown' }, 'names match on whole words only')
  t.same(symbols.resolve('--'), { kind: 'unknown' })
  t.same(symbols.resolve('B'), { kind: 'unknown' }, 'a letter is a symbol, not the "Class B" of a name')
  const many = symbols.resolve('Inc')
  t.equal(many.kind === 'candidates' && many.candidates.length, MAX_CANDIDATES, 'candidates are capped')
})

t.test('completion helpers and descriptions', async t => {
  t.equal(completeTicker(symbols, 'nvd')[0], 'NVDA')
  t.same(completeTickerList(symbols, 'AAPL, MSF'), ['AAPL, MSFT'])
  t.notOk(completeTickerList(symbols, 'AAPL,AAP').includes('AAPL, AAPL'), 'a symbol already chosen is not offered again')
  t.equal(completeTickerList(symbols, 'nvd')[0], 'NVDA', 'the first item has no prefix')
  t.equal(describeSymbol(symbols.get('AAPL')!), 'AAPL (Apple Inc., NASDAQ)')
  t.equal(describeSymbol(symbols.get('CRYPTO:BTC')!), 'CRYPTO:BTC (Bitcoin)')
})

t.test('promptTicker: symbols and symbol-shaped input pass; names and junk are -32602', async t => {
  t.equal(promptTicker(symbols, 'aapl', 'ticker'), 'AAPL')
  t.equal(promptTicker(symbols, 'zzzz', 'ticker'), 'ZZZZ', 'not listed, but shaped like a ticker')
  t.throws(() => promptTicker(symbols, 'Apple', 'ticker'), { code: RpcError.InvalidParams, message: /did you mean AAPL \(Apple Inc\., NASDAQ\), APLE/ })
  t.throws(() => promptTicker(symbols, 'not a ticker!', 'ticker'), { code: RpcError.InvalidParams, message: /must be a ticker symbol/ })
})

t.test('a list read from CSV text', async t => {
  const index = SymbolIndex.fromCsv('ticker,name,exchange,kind\nABC,Abc Corp,NYSE,stock\n\nXYZ,Xyz,,etf\n')
  t.equal(index.size, 2)
  t.same(index.get('xyz'), { ticker: 'XYZ', name: 'Xyz', exchange: undefined, kind: 'etf' })
})
