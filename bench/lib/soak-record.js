// What bench/soak.js counts: every request by role and kind, its latency, the
// 10 s interval it finished in, and every failure with a few samples.
import { percentile } from './load.js'

export class SoakRecord {
  /** @param {number} startedAt  performance.now() when the load began; @param {number} intervalMs */
  constructor (startedAt, intervalMs) {
    this.startedAt = startedAt
    this.intervalMs = intervalMs
    /** Per interval: requests by kind, and errors. */
    this.intervals = []
    /** By `${role} ${kind}`: { role, kind, count, expected, latencies }. */
    this.byName = new Map()
    /** By category: count. */
    this.errors = new Map()
    this.samples = []
  }

  #interval (now) {
    const index = Math.max(0, Math.floor((now - this.startedAt) / this.intervalMs))
    while (this.intervals.length <= index) this.intervals.push({ byKind: {}, errors: 0 })
    return this.intervals[index]
  }

  #entry (role, kind) {
    const name = `${role} ${kind}`
    let entry = this.byName.get(name)
    if (entry === undefined) {
      entry = { role, kind, count: 0, expected: 0, latencies: [] }
      this.byName.set(name, entry)
    }
    return entry
  }

  /** A request that got an answer (right or wrong: a wrong one is also an error()). `expected` marks an expected non-2xx. */
  answered (role, kind, latency, now, expected = false) {
    const entry = this.#entry(role, kind)
    entry.count++
    if (expected) entry.expected++
    entry.latencies.push(latency)
    const interval = this.#interval(now)
    interval.byKind[kind] = (interval.byKind[kind] ?? 0) + 1
  }

  error (role, kind, category, detail, now = performance.now()) {
    this.errors.set(category, (this.errors.get(category) ?? 0) + 1)
    this.#interval(now).errors++
    if (this.samples.length < 20) this.samples.push(`${((now - this.startedAt) / 1000).toFixed(1)} s, ${role} ${kind}: ${category}: ${String(detail).slice(0, 300)}`)
  }

  get errorCount () {
    let n = 0
    for (const count of this.errors.values()) n += count
    return n
  }

  /** Count, expected non-2xx, p50 and p99 per role and kind, and over all requests. */
  latencySummary () {
    const rows = []
    const all = []
    for (const entry of this.byName.values()) {
      const sorted = entry.latencies.sort((a, b) => a - b)
      for (const l of sorted) all.push(l)
      rows.push({ role: entry.role, kind: entry.kind, count: entry.count, expected: entry.expected, p50: percentile(sorted, 50), p99: percentile(sorted, 99) })
    }
    all.sort((a, b) => a - b)
    return { rows, overall: { count: all.length, p50: percentile(all, 50), p99: percentile(all, 99) } }
  }
}
