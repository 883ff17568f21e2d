import type { FastifyInstance } from 'fastify'
import { TOPICS } from '../lib/news/arguments.js'

export const TOPICS_URI = 'news://topics'

/** What each topic code covers, in Alpha Vantage's own words where it has them. */
const TOPIC_NAMES: Record<typeof TOPICS[number], string> = {
  blockchain: 'Blockchain',
  earnings: 'Earnings',
  ipo: 'IPO',
  mergers_and_acquisitions: 'Mergers & Acquisitions',
  financial_markets: 'Financial Markets',
  economy_fiscal: 'Economy - Fiscal Policy (e.g., tax reform, government spending)',
  economy_monetary: 'Economy - Monetary Policy (e.g., interest rates, inflation)',
  economy_macro: 'Economy - Macro/Overall',
  energy_transportation: 'Energy & Transportation',
  finance: 'Finance',
  life_sciences: 'Life Sciences',
  manufacturing: 'Manufacturing',
  real_estate: 'Real Estate & Construction',
  retail_wholesale: 'Retail & Wholesale',
  technology: 'Technology'
}

export const TOPIC_LIST = TOPICS.map(code => ({ code, name: TOPIC_NAMES[code] }))

export default async function topicsResource (fastify: FastifyInstance): Promise<void> {
  const text = JSON.stringify({ topics: TOPIC_LIST }, null, 2)
  fastify.mcpResource({
    uri: TOPICS_URI,
    name: 'topics',
    title: 'News topics',
    description: 'The topic codes the news tools accept (topics of get_news_sentiment and get_market_news), with what each covers',
    mimeType: 'application/json',
    size: Buffer.byteLength(text)
  }, uri => ({ contents: [{ uri, mimeType: 'application/json', text }] }))
}
