/**
 * Alpha Vantage speaks US Eastern wall-clock time without a zone, both in
 * `time_published` and in the `time_from`/`time_to` it accepts
 * (YYYYMMDDTHHMM[SS]). These convert between that and UTC instants, with New
 * York's offset on the day in question (EST −5 h or EDT −4 h).
 */

const eastern = new Intl.DateTimeFormat('en-US', {
  timeZone: 'America/New_York',
  hourCycle: 'h23',
  year: 'numeric',
  month: 'numeric',
  day: 'numeric',
  hour: 'numeric',
  minute: 'numeric',
  second: 'numeric'
})

function wallClock (epochMs: number): Record<string, number> {
  const parts: Record<string, number> = {}
  for (const p of eastern.formatToParts(new Date(epochMs))) if (p.type !== 'literal') parts[p.type] = Number(p.value)
  return parts
}

/** Milliseconds New York's wall clock is ahead of UTC at this instant (negative). */
function easternOffset (epochMs: number): number {
  const p = wallClock(epochMs)
  const asUtc = Date.UTC(p.year as number, (p.month as number) - 1, p.day, p.hour, p.minute, p.second)
  return asUtc - Math.floor(epochMs / 1000) * 1000
}

const STAMP = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})?$/

/** `YYYYMMDDTHHMM[SS]` Eastern → epoch ms, or null when it is not such a time. */
export function easternStampToEpoch (value: unknown): number | null {
  const m = typeof value === 'string' ? STAMP.exec(value) : null
  if (m === null) return null
  const [y, mo, d, h, mi, s] = m.slice(1).map(v => Number(v ?? 0)) as [number, number, number, number, number, number]
  if (h > 23 || mi > 59 || s > 59) return null
  const wall = Date.UTC(y, mo - 1, d, h, mi, s)
  // Date.UTC rolls 31 February over into March: such a stamp is not a date.
  const date = new Date(wall)
  if (date.getUTCFullYear() !== y || date.getUTCMonth() !== mo - 1 || date.getUTCDate() !== d) return null
  // The offset taken at the wall time read as UTC is right except within
  // hours of a DST switch; one correction settles it.
  const first = wall - easternOffset(wall)
  const second = wall - easternOffset(first)
  if (second + easternOffset(second) === wall) return second
  // A wall time in the spring-forward gap (02:00–02:59 on the second Sunday
  // of March) never happens; read it with the offset in force before the
  // switch, as Temporal's "compatible" disambiguation, java.time and Python's
  // zoneinfo do (02:05 becomes 03:05 EDT), not an hour earlier (01:05 EST).
  return wall - easternOffset(second)
}

/** `YYYYMMDDTHHMMSS` Eastern → ISO 8601 UTC (`2024-01-18T09:50:04Z`), or null. */
export function easternToIso (value: unknown): string | null {
  const epoch = easternStampToEpoch(value)
  return epoch === null ? null : new Date(epoch).toISOString().replace('.000Z', 'Z')
}

/** An instant → Alpha Vantage's `YYYYMMDDTHHMM` in Eastern time. */
export function toEasternStamp (epochMs: number): string {
  const p = wallClock(epochMs)
  const two = (n: number | undefined): string => String(n).padStart(2, '0')
  return `${p.year}${two(p.month)}${two(p.day)}T${two(p.hour)}${two(p.minute)}`
}

const HOUR_MS = 3_600_000

/** The US Eastern calendar date of an instant, `YYYY-MM-DD`. */
export function easternDate (epochMs: number): string {
  const p = wallClock(epochMs)
  return `${p.year}-${String(p.month).padStart(2, '0')}-${String(p.day).padStart(2, '0')}`
}

/** The instant of midnight, US Eastern, that starts the Eastern day holding `epochMs` (New York never skips or repeats midnight). */
export function startOfEasternDay (epochMs: number): number {
  return easternStampToEpoch(`${easternDate(epochMs).replaceAll('-', '')}T0000`) as number
}

/** The Eastern midnight after the one that starts this day: 23, 24 or 25 hours later. */
export function nextEasternDay (dayStartMs: number): number {
  // Noon of the next day, whatever the DST switch did to this one.
  return startOfEasternDay(dayStartMs + 36 * HOUR_MS)
}

/** An instant as ISO 8601 with New York's offset that day: `2024-03-10T03:00-04:00`. */
export function easternIso (epochMs: number): string {
  const offsetMin = Math.round(easternOffset(epochMs) / 60_000)
  const local = new Date(epochMs + offsetMin * 60_000).toISOString().slice(0, 16)
  // New York is always behind UTC, by whole hours (4 or 5).
  return `${local}-${String(-offsetMin / 60).padStart(2, '0')}:00`
}
