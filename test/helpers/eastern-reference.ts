/**
 * US Eastern time by the rule itself (Energy Policy Act of 2005, in force
 * since 2007): EDT (UTC−4) from the second Sunday of March at 02:00 EST to
 * the first Sunday of November at 02:00 EDT, EST (UTC−5) otherwise. Written
 * without Intl, so tests check lib/eastern-time.ts against something that
 * does not share its method.
 */

const HOUR_MS = 3_600_000

/** Day of the month of the nth Sunday of a month (month0: 0 = January). */
function nthSunday (year: number, month0: number, n: number): number {
  const firstWeekday = new Date(Date.UTC(year, month0, 1)).getUTCDay()
  return 1 + ((7 - firstWeekday) % 7) + 7 * (n - 1)
}

/** The UTC instants at which EDT starts and ends in a year. */
function dstBounds (year: number): { start: number, end: number } {
  return {
    start: Date.UTC(year, 2, nthSunday(year, 2, 2), 2 + 5), // 02:00 EST
    end: Date.UTC(year, 10, nthSunday(year, 10, 1), 2 + 4) // 02:00 EDT
  }
}

/** Hours Eastern time is behind UTC at an instant: 4 or 5. */
export function hoursBehindUtc (epochMs: number): number {
  const { start, end } = dstBounds(new Date(epochMs).getUTCFullYear())
  return epochMs >= start && epochMs < end ? 4 : 5
}

/**
 * An Eastern wall time → epoch ms. A time in the spring-forward gap (02:xx on
 * the second Sunday of March) is read as EST, i.e. moved an hour forward; a
 * time the autumn repeats (01:xx on the first Sunday of November) is the first
 * one, EDT.
 */
export function easternWallToEpoch (y: number, mo: number, d: number, h: number, mi: number, s = 0): number {
  const wall = Date.UTC(y, mo - 1, d, h, mi, s)
  const edtFrom = Date.UTC(y, 2, nthSunday(y, 2, 2), 3) // the first EDT wall time
  const edtUntil = Date.UTC(y, 10, nthSunday(y, 10, 1), 2) // the first wall time back on EST
  return wall + (wall >= edtFrom && wall < edtUntil ? 4 : 5) * HOUR_MS
}

/** Alpha Vantage's `YYYYMMDDTHHMM[SS]` → ISO 8601 UTC without milliseconds, or null when it is not such a stamp. */
export function referenceIso (stamp: unknown): string | null {
  const m = typeof stamp === 'string' ? /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})?$/.exec(stamp) : null
  if (m === null) return null
  const [y, mo, d, h, mi, s] = m.slice(1).map(v => Number(v ?? 0)) as [number, number, number, number, number, number]
  return new Date(easternWallToEpoch(y, mo, d, h, mi, s)).toISOString().replace('.000Z', 'Z')
}

/** An instant → `YYYYMMDDTHHMM` in Eastern time. */
export function referenceStamp (epochMs: number): string {
  const local = new Date(epochMs - hoursBehindUtc(epochMs) * HOUR_MS).toISOString()
  return `${local.slice(0, 4)}${local.slice(5, 7)}${local.slice(8, 10)}T${local.slice(11, 13)}${local.slice(14, 16)}`
}
