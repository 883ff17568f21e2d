import t from 'tap'
import { TOPICS, parseTime, toNewsQuery, topicMatches } from '../../../lib/news/arguments.js'
import { easternWallToEpoch, referenceStamp } from '../../helpers/eastern-reference.js'
import { ageText } from '../../../lib/news/format.js'

t.test('every topic code matches the name the feed gives it, and no other', async t => {
  // The names Alpha Vantage's feed writes for its 15 topics.
  const names: Record<typeof TOPICS[number], string> = {
    blockchain: 'Blockchain',
    earnings: 'Earnings',
    ipo: 'IPO',
    mergers_and_acquisitions: 'Mergers & Acquisitions',
    financial_markets: 'Financial Markets',
    economy_fiscal: 'Economy - Fiscal',
    economy_monetary: 'Economy - Monetary',
    economy_macro: 'Economy - Macro',
    energy_transportation: 'Energy & Transportation',
    finance: 'Finance',
    life_sciences: 'Life Sciences',
    manufacturing: 'Manufacturing',
    real_estate: 'Real Estate & Construction',
    retail_wholesale: 'Retail & Wholesale',
    technology: 'Technology'
  }
  t.equal(TOPICS.length, 15)
  for (const code of TOPICS) {
    for (const [other, name] of Object.entries(names)) {
      t.equal(topicMatches(code, name), other === code, `${code} ${other === code ? 'matches' : 'does not match'} "${name}"`)
    }
  }
  t.ok(topicMatches('mergers_and_acquisitions', 'Mergers and Acquisitions'), 'spelled out with "and"')
})

t.test('times: relative, ISO 8601 and Alpha Vantage stamps', async t => {
  const now = Date.UTC(2024, 4, 20, 12, 7, 30)
  const step = 15 * 60_000
  t.equal(parseTime('7d', now), Math.floor((now - 7 * 86_400_000) / step) * step, '7d, rounded down to a quarter hour')
  t.equal(parseTime('24H', now), Date.UTC(2024, 4, 19, 12, 0))
  t.equal(parseTime('90m', now), Date.UTC(2024, 4, 20, 10, 30))
  t.equal(parseTime('90min', now), Date.UTC(2024, 4, 20, 10, 30))
  t.equal(parseTime('2w', now), Date.UTC(2024, 4, 6, 12, 0))
  t.equal(parseTime('2024-05-01', now), Date.UTC(2024, 4, 1), 'a date is midnight UTC')
  t.equal(parseTime('2024-05-01T13:30', now), Date.UTC(2024, 4, 1, 13, 30), 'no zone: UTC')
  t.equal(parseTime('2024-05-01 13:30:15.5', now), Date.UTC(2024, 4, 1, 13, 30, 15, 500))
  t.equal(parseTime('2024-05-01T13:30Z', now), Date.UTC(2024, 4, 1, 13, 30))
  t.equal(parseTime('2024-05-01T13:30+02:00', now), Date.UTC(2024, 4, 1, 11, 30))
  t.equal(parseTime('2024-05-01T13:30-0400', now), Date.UTC(2024, 4, 1, 17, 30))
  t.equal(parseTime('20240501T0930', now), easternWallToEpoch(2024, 5, 1, 9, 30), 'a stamp is Eastern time')
  for (const bad of ['yesterday-ish', '2024-13-01', '2024-02-30T10:00Z', '2024-05-01T25:00Z', '7 days', '-7d', '', '20240231T1200']) {
    t.match(parseTime(bad, now), /^must be an ISO 8601 time/, bad)
  }
})

t.test('the upstream query: Eastern stamps, always Alpha Vantage\'s maximum of 1,000 articles', async t => {
  const from = Date.UTC(2024, 2, 10, 6, 59)
  const to = Date.UTC(2024, 2, 10, 7, 1)
  t.same(toNewsQuery({ timeFrom: from, timeTo: to, sort: 'LATEST' }, ['AAPL']), {
    tickers: ['AAPL'],
    timeFrom: referenceStamp(from),
    timeTo: referenceStamp(to),
    sort: 'LATEST',
    limit: 1000
  })
  t.same(toNewsQuery({ topics: ['ipo'], sort: 'RELEVANCE' }, undefined), { topics: ['ipo'], sort: 'RELEVANCE', limit: 1000 })
})

t.test('ages read in the unit that says something', async t => {
  t.equal(ageText(0), '0 s')
  t.equal(ageText(119), '119 s')
  t.equal(ageText(120), '2 min')
  t.equal(ageText(7199), '120 min')
  t.equal(ageText(7200), '2 h')
  t.equal(ageText(86_400), '24 h')
})
