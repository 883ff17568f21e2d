import t from 'tap'
import { easternStampToEpoch, easternToIso, toEasternStamp } from '../../../lib/news/eastern-time.js'
import { referenceIso, referenceStamp } from '../../helpers/eastern-reference.js'

t.test('Eastern stamps → UTC around the 2024 DST switches', async t => {
  // Every quarter hour from the day before to the day after each switch.
  for (const day of [Date.UTC(2024, 2, 9), Date.UTC(2024, 10, 2)]) {
    for (let wall = day; wall < day + 3 * 86_400_000; wall += 15 * 60_000) {
      const stamp = new Date(wall).toISOString().replace(/[-:]/g, '').slice(0, 15) // YYYYMMDDTHHMMSS
      t.equal(easternToIso(stamp), referenceIso(stamp), stamp)
    }
  }
})

t.test('the switch days, spelled out', async t => {
  t.equal(easternToIso('20240310T015900'), '2024-03-10T06:59:00Z', 'the last EST minute')
  t.equal(easternToIso('20240310T030000'), '2024-03-10T07:00:00Z', 'the first EDT minute')
  t.equal(easternToIso('20240310T023000'), '2024-03-10T07:30:00Z', 'a time in the gap moves forward (03:30 EDT)')
  t.equal(easternToIso('20241103T005900'), '2024-11-03T04:59:00Z')
  t.equal(easternToIso('20241103T013000'), '2024-11-03T05:30:00Z', 'the repeated hour reads as its first (EDT) pass')
  t.equal(easternToIso('20241103T020000'), '2024-11-03T07:00:00Z', 'back on EST')
  t.equal(easternToIso('20240712T143000'), '2024-07-12T18:30:00Z', 'July: EDT, UTC−4')
  t.equal(easternToIso('20240115T0915'), '2024-01-15T14:15:00Z', 'January: EST, UTC−5, seconds optional')
  // The fixture's 02:05 on the switch day: read with the EST offset, as a clock not yet set forward would show it.
  t.equal(easternToIso('20240310T020500'), '2024-03-10T07:05:00Z')
})

t.test('what is not a stamp is null', async t => {
  for (const bad of ['not-a-time', '', '2024-01-15T09:15', '20240115', '20240115T9', '20241315T0000', '20240230T1200',
    '20240100T1200', '20240115T2400', '20240115T1260', '20240115T120060', '20240115T091500Z', 20240115, null, undefined]) {
    t.equal(easternToIso(bad), null, String(bad))
    t.equal(easternStampToEpoch(bad), null)
  }
  t.equal(easternToIso('20240229T120000'), '2024-02-29T17:00:00Z', 'a leap day is a date')
})

t.test('UTC instants → Eastern YYYYMMDDTHHMM', async t => {
  for (const instant of [Date.UTC(2024, 2, 10, 6, 59), Date.UTC(2024, 2, 10, 7), Date.UTC(2024, 10, 3, 5, 30), Date.UTC(2024, 10, 3, 6, 30),
    Date.UTC(2024, 6, 12, 18, 30, 45), Date.UTC(2024, 0, 1, 4, 59), Date.UTC(2024, 0, 1, 5)]) {
    t.equal(toEasternStamp(instant), referenceStamp(instant), new Date(instant).toISOString())
  }
  t.equal(toEasternStamp(Date.UTC(2024, 0, 1, 4, 59)), '20231231T2359', 'across a year boundary')
  t.equal(toEasternStamp(Date.UTC(2024, 10, 3, 4, 0)), '20241103T0000', 'midnight is 00, not 24')
  // Round trip outside the repeated hour.
  t.equal(easternStampToEpoch(toEasternStamp(Date.UTC(2024, 6, 12, 18, 30))), Date.UTC(2024, 6, 12, 18, 30))
})
