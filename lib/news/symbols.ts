import { readFileSync } from 'node:fs'
import { RpcError, RpcFailure } from '../mcp/protocol.js'
import { TICKER } from './arguments.js'

export type SymbolKind = 'stock' | 'etf' | 'crypto' | 'forex'

export interface SymbolEntry {
  /** As Alpha Vantage names it: AAPL, BRK.B, CRYPTO:BTC, FOREX:EUR. */
  ticker: string
  name: string
  /** Where it is listed, when the list says. */
  exchange: string | undefined
  kind: SymbolKind
}

/** What a user typed where a ticker is expected, read against the list. */
export type TickerResolution =
  | { kind: 'exact', entry: SymbolEntry }
  /** A company name ("Apple") or a base symbol with several share classes ("BRK"): these are what it may mean. */
  | { kind: 'candidates', candidates: SymbolEntry[] }
  /** Not in the list: a symbol the list does not hold, or not a name it knows. */
  | { kind: 'unknown' }

/** The most candidates a resolution offers (an elicitation's choice list must stay readable). */
export const MAX_CANDIDATES = 10

function words (text: string): string[] {
  return text.toLowerCase().replace(/['’]/g, '').split(/[^a-z0-9]+/).filter(w => w !== '')
}

interface Indexed {
  entry: SymbolEntry
  lowerTicker: string
  /** The symbol before a share-class suffix: BRK for BRK.A and BRK.B. */
  base: string
  words: string[]
}

/**
 * The symbols shipped with the project (data/symbols.csv, see data/README.md):
 * searched for completions and for reading a company name as a ticker, in
 * memory, without any upstream call. The list is not exhaustive: a symbol
 * missing from it is still a valid question for the news tools.
 */
export class SymbolIndex {
  readonly #entries: Indexed[]
  readonly #byTicker = new Map<string, SymbolEntry>()

  constructor (entries: readonly SymbolEntry[]) {
    this.#entries = entries.map(entry => ({
      entry,
      lowerTicker: entry.ticker.toLowerCase(),
      base: entry.ticker.split(/[.-]/)[0] as string,
      words: words(entry.name)
    }))
    for (const entry of entries) this.#byTicker.set(entry.ticker, entry)
  }

  /** Reads a CSV of `ticker,name,exchange,kind` with a header line (names hold no commas). */
  static fromCsv (text: string): SymbolIndex {
    const entries: SymbolEntry[] = []
    for (const line of text.split('\n').slice(1)) {
      if (line.trim() === '') continue
      const [ticker, name, exchange, kind] = line.split(',') as [string, string, string, string]
      entries.push({ ticker, name, exchange: exchange === '' ? undefined : exchange, kind: kind as SymbolKind })
    }
    return new SymbolIndex(entries)
  }

  get size (): number {
    return this.#entries.length
  }

  /** Whether the list holds exactly this symbol (upper case, trimmed): the cheap check of a hot path. */
  has (ticker: string): boolean {
    return this.#byTicker.has(ticker)
  }

  /** The entry for a symbol, case-insensitive. */
  get (ticker: string): SymbolEntry | undefined {
    return this.#byTicker.get(ticker.trim().toUpperCase())
  }

  /**
   * Entries for what a user has typed, best first: the exact symbol, symbols
   * starting with it, then names with a word starting with each typed word
   * (case-insensitive); within each group, in the list's order (largest first).
   * An empty query gives the whole list.
   */
  search (query: string): SymbolEntry[] {
    const q = query.trim().toLowerCase()
    if (q === '') return this.#entries.map(i => i.entry)
    const typed = words(q)
    const exact: SymbolEntry[] = []
    const prefix: SymbolEntry[] = []
    const named: SymbolEntry[] = []
    for (const i of this.#entries) {
      if (i.lowerTicker === q) exact.push(i.entry)
      else if (i.lowerTicker.startsWith(q)) prefix.push(i.entry)
      else if (typed.length > 0 && typed.every(t => i.words.some(w => w.startsWith(t)))) named.push(i.entry)
    }
    return [...exact, ...prefix, ...named]
  }

  /**
   * Reads a would-be ticker: a listed symbol is itself; a base symbol with
   * several share classes, or the whole words of a company name, give the
   * candidates; anything else is unknown (pass it on as a symbol).
   */
  resolve (input: string): TickerResolution {
    const upper = input.trim().toUpperCase()
    const entry = this.#byTicker.get(upper)
    if (entry !== undefined) return { kind: 'exact', entry }
    const typed = words(input)
    // One or two letters read as a symbol, not a name: "B" is no share class ("Class B") of anything.
    const byName = typed.join('').length >= 3
    const candidates: SymbolEntry[] = []
    for (const i of this.#entries) {
      if (candidates.length === MAX_CANDIDATES) break
      const named = byName && typed.every(t => i.words.includes(t))
      if (i.base === upper || named) candidates.push(i.entry)
    }
    return candidates.length === 0 ? { kind: 'unknown' } : { kind: 'candidates', candidates }
  }
}

let shipped: SymbolIndex | undefined

/** The list in data/symbols.csv, read once (from the project root, under tests and as dist/). */
export function shippedSymbols (): SymbolIndex {
  if (shipped === undefined) {
    const root = new URL('../../', import.meta.url).href.replace(/\/dist\/$/, '/')
    shipped = SymbolIndex.fromCsv(readFileSync(new URL('data/symbols.csv', root), 'utf8'))
  }
  return shipped
}

/** Completion values for a ticker argument: the symbols matching what was typed, best first. */
export function completeTicker (index: SymbolIndex, typed: string): string[] {
  return index.search(typed).map(e => e.ticker)
}

/**
 * Completion values for a comma-separated list of tickers ("AAPL, MS"): the
 * last item completed, the items before it kept as typed, none repeated.
 */
export function completeTickerList (index: SymbolIndex, typed: string): string[] {
  const cut = typed.lastIndexOf(',')
  const head = typed.slice(0, cut + 1)
  const chosen = new Set(head.split(',').map(s => s.trim().toUpperCase()))
  const prefix = cut < 0 ? '' : `${head.trimEnd()} `
  return index.search(typed.slice(cut + 1)).filter(e => !chosen.has(e.ticker)).map(e => `${prefix}${e.ticker}`)
}

/** "AAPL (Apple Inc., NASDAQ)": a symbol as a person reads it. */
export function describeSymbol (entry: SymbolEntry): string {
  return `${entry.ticker} (${entry.name}${entry.exchange === undefined ? '' : `, ${entry.exchange}`})`
}

/**
 * A prompt's ticker argument as a symbol: a listed symbol, or anything shaped
 * like one (the list is not exhaustive); a company name is -32602 naming the
 * symbols it may mean, so that the user picks one.
 */
export function promptTicker (index: SymbolIndex, value: string, argument: string): string {
  const resolution = index.resolve(value)
  if (resolution.kind === 'exact') return resolution.entry.ticker
  if (resolution.kind === 'candidates') {
    throw new RpcFailure(RpcError.InvalidParams, `Invalid params: ${argument} "${value.trim().slice(0, 64)}" is not a ticker symbol; did you mean ${resolution.candidates.map(describeSymbol).join(', ')}?`)
  }
  const trimmed = value.trim()
  if (!TICKER.test(trimmed)) throw new RpcFailure(RpcError.InvalidParams, `Invalid params: ${argument} must be a ticker symbol such as AAPL, BRK.B, CRYPTO:BTC or FOREX:EUR`)
  return trimmed.toUpperCase()
}
