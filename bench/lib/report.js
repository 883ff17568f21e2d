// Aggregation over rounds and the markdown report.

export function median (values) {
  const sorted = values.filter(v => Number.isFinite(v)).sort((a, b) => a - b)
  if (sorted.length === 0) return NaN
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

const sum = (values) => values.reduce((a, b) => a + (b ?? 0), 0)

/** Medians of rate and latencies over the rounds, totals of failures. */
export function aggregate (rounds) {
  return {
    rounds: rounds.length,
    rps: median(rounds.map(r => r.rps)),
    p50: median(rounds.map(r => r.p50)),
    p99: median(rounds.map(r => r.p99)),
    p999: median(rounds.map(r => r.p999)),
    // GC over all rounds: scavenges and mark-compacts per round (median), the longest pauses seen in any round.
    scavenges: median(rounds.map(r => r.gc?.scavenges)),
    maxScavengeMs: Math.max(...rounds.map(r => r.gc?.maxScavengeMs ?? NaN)),
    markCompacts: median(rounds.map(r => r.gc?.markCompacts)),
    maxMarkCompactMs: Math.max(...rounds.map(r => r.gc?.maxMarkCompactMs ?? NaN)),
    serverCpu: median(rounds.map(r => r.serverCpu)),
    loadCpu: median(rounds.map(r => r.loadCpu)),
    // Requests per second of server CPU: less sensitive than req/s to whatever else shares the cores.
    perCpu: median(rounds.map(r => r.serverCpu > 0 ? r.rps / (r.serverCpu / 100) : NaN)),
    ok: sum(rounds.map(r => r.ok)),
    non2xx: sum(rounds.map(r => r.non2xx)),
    errors: sum(rounds.map(r => r.errors)),
    upstreamHits: rounds.some(r => r.upstreamHits !== undefined) ? sum(rounds.map(r => r.upstreamHits)) : undefined,
    allRps: rounds.map(r => r.rps)
  }
}

export const fmt = (n, digits = 0) => Number.isFinite(n) ? n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits }) : 'n/a'
export const ms = (n) => Number.isFinite(n) ? (n < 10 ? n.toFixed(2) : n.toFixed(1)) : 'n/a'
const ratio = (a, b) => Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN
export const mb = (bytes) => (bytes / 2 ** 20).toFixed(1)

export function markdown ({ machine, settings, versions, scenarios, table, memory, profile, notes, startedAt, elapsedSec }) {
  const out = []
  out.push('## Benchmark (issue 4)', '')
  out.push(`Machine: ${machine.nproc} × ${machine.cpu} (\`nproc\` ${machine.nproc}), ${machine.memGb.toFixed(1)} GiB, Linux ${machine.kernel}, Node ${machine.node}. ` +
    `Run ${startedAt}, ${Math.round(elapsedSec)} s in all; load average ${machine.loadStart[0].toFixed(2)} at the start, ${machine.loadEnd[0].toFixed(2)} at the end ` +
    '(the load generator and the servers share these cores: anything else running skews the numbers).')
  out.push(`Load: autocannon ${versions.autocannon} in the parent process, ${settings.connections} connections, ` +
    `${settings.rounds} rounds × ${settings.duration} s per target, targets alternating round-robin (after a ${settings.warmup} s warm-up each); ` +
    'each server in its own child process; the JWKS and the fake Alpha Vantage in a third. ' +
    'req/s, p50 and p99 are medians over the rounds; non-2xx and errors are totals; CPU is the share of one core used by the server process and by the load generator (medians). ' +
    `Fresh clients: an undici Pool, ${settings.connections} clients each looping initialize → tools/call; rate is pairs/s, latency is the pair's.`)
  out.push('', 'Targets: **bare** = Fastify, one POST route answering a JSON-RPC body of the same size; ' +
    `**reference** = MCP SDK ${versions.sdk} \`StreamableHTTPServerTransport\` + \`McpServer\` behind Fastify, jose \`jwtVerify\` + \`createRemoteJWKSet\` on every request, ` +
    'the tool answering a precomputed result (stateful: a transport per session in a Map; stateless: a server + transport per request); ' +
    '**this server** = `dist/app.js` registered as fastify-cli does, a real RS256 token verified through the local JWKS. All three log at level warn.', '')

  out.push('| Scenario | Target | req/s | p50 ms | p99 ms | p99.9 ms | non-2xx | errors | CPU server / load gen | req per server CPU-s | scavenges (longest ms) | mark-compacts (longest ms) |')
  out.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const scenario of scenarios) {
    for (const target of scenario.targets) {
      const r = table[scenario.name]?.[target.label]
      if (r === undefined) continue
      out.push(`| ${scenario.name} | ${target.label} | ${fmt(r.rps)} | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.p999)} | ${fmt(r.non2xx)} | ${fmt(r.errors)} | ${fmt(r.serverCpu)} % / ${fmt(r.loadCpu)} % | ${fmt(r.perCpu)} | ` +
        `${fmt(r.scavenges)} (${ms(r.maxScavengeMs)}) | ${fmt(r.markCompacts)} (${Number.isFinite(r.maxMarkCompactMs) && r.markCompacts > 0 ? ms(r.maxMarkCompactMs) : '–'}) |`)
    }
  }

  out.push('', '| Scenario | this server / bare | this server / reference | per server CPU-s: / bare | per server CPU-s: / reference | p50 / bare | p99 / bare | p99.9 / bare |')
  out.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  const ratios = {}
  const pct = (r) => Number.isFinite(r) ? `${(100 * r).toFixed(0)} %` : 'n/a'
  const times = (r) => Number.isFinite(r) ? `${r.toFixed(2)} ×` : 'n/a'
  for (const scenario of scenarios) {
    const row = table[scenario.name]
    if (row === undefined) continue
    // Bare is the first target; the one under test is this server (in memory) where it runs, else the last one.
    const bare = row[scenario.targets[0].label]
    const app = row['this server'] ?? row[scenario.targets[scenario.targets.length - 1].label]
    const reference = row.reference
    const r = ratios[scenario.name] = {
      ofBare: ratio(app?.rps, bare?.rps),
      ofReference: ratio(app?.rps, reference?.rps),
      cpuOfBare: ratio(app?.perCpu, bare?.perCpu),
      cpuOfReference: ratio(app?.perCpu, reference?.perCpu),
      p50OfBare: ratio(app?.p50, bare?.p50),
      p99OfBare: ratio(app?.p99, bare?.p99),
      p999OfBare: ratio(app?.p999, bare?.p999),
      scavengeOfBare: ratio(app?.maxScavengeMs, bare?.maxScavengeMs)
    }
    out.push(`| ${scenario.name} | ${pct(r.ofBare)} | ${times(r.ofReference)} | ${pct(r.cpuOfBare)} | ${times(r.cpuOfReference)} | ${times(r.p50OfBare)} | ${times(r.p99OfBare)} | ${times(r.p999OfBare)} |`)
  }

  if (memory.length > 0) {
    out.push('', 'Idle sessions (initialize over `inject`, then a full GC, node --expose-gc):', '')
    out.push('| Server | sessions | heapUsed Δ MB | RSS Δ MB | heap bytes/session |')
    out.push('| --- | ---: | ---: | ---: | ---: |')
    for (const m of memory) {
      if (m.error !== undefined) {
        out.push(`| ${m.label} | n/a | n/a | n/a | failed: ${m.error.split('\n')[0]} |`)
        continue
      }
      const heap = m.after.heapUsed - m.before.heapUsed
      const rss = m.after.rss - m.before.rss
      out.push(`| ${m.label} | ${fmt(m.sessions)} | ${mb(heap)} | ${mb(rss)} | ${fmt(heap / m.sessions)} |`)
    }
  }

  const verdict = (ok) => Number.isNaN(ok) ? 'n/a' : ok ? 'met' : '**not met**'
  const call = ratios['session tools/call'] ?? {}
  const stateless = ratios['stateless tools/call'] ?? {}
  const appMemory = memory.find(m => m.target === 'app' && m.error === undefined)
  const appHeapMb = appMemory === undefined ? NaN : (appMemory.after.heapUsed - appMemory.before.heapUsed) / 2 ** 20
  const appRssMb = appMemory === undefined ? NaN : (appMemory.after.rss - appMemory.before.rss) / 2 ** 20
  const check = (value, goal) => Number.isFinite(value) ? value >= goal : NaN
  out.push('', '| Target (issue 4) | Goal | Measured | |')
  out.push('| --- | ---: | ---: | --- |')
  const perCpu = (r, pct) => ` (per server CPU-s: ${pct ? `${(100 * r).toFixed(0)} %` : `${r?.toFixed(2)} ×`})`
  out.push(`| Authenticated tools/call in a session vs bare | ≥ 50 % | ${(100 * call.ofBare).toFixed(0)} %${perCpu(call.cpuOfBare, true)} | ${verdict(check(call.ofBare, 0.5))} |`)
  out.push(`| Authenticated tools/call in a session vs reference | ≥ 3 × | ${call.ofReference?.toFixed(2)} ×${perCpu(call.cpuOfReference, false)} | ${verdict(check(call.ofReference, 3))} |`)
  out.push(`| Stateless tools/call vs bare | ≥ 30 % | ${(100 * stateless.ofBare).toFixed(0)} %${perCpu(stateless.cpuOfBare, true)} | ${verdict(check(stateless.ofBare, 0.3))} |`)
  out.push(`| ${fmt(settings.sessions)} idle sessions (heap; RSS ${Number.isFinite(appRssMb) ? appRssMb.toFixed(1) : 'n/a'} MB) | ≤ 50 MB | ${Number.isFinite(appHeapMb) ? appHeapMb.toFixed(1) : 'n/a'} MB | ${verdict(Number.isFinite(appHeapMb) ? appHeapMb <= 50 : NaN)} |`)

  const atMost = (value, goal) => Number.isFinite(value) ? value <= goal : NaN
  out.push('', '| Target (issue 15, 20 connections) | Goal | Measured | |')
  out.push('| --- | ---: | ---: | --- |')
  for (const name of ['tail: echo tools/call, plugins', 'tail: news tools/call from cache, app']) {
    const r = ratios[name]
    if (r === undefined) continue
    out.push(`| ${name}: p99 vs bare's p99 | ≤ 1.5 × | ${times(r.p99OfBare)} | ${verdict(atMost(r.p99OfBare, 1.5))} |`)
    out.push(`| ${name}: longest scavenge vs bare's | ≤ 2 × | ${times(r.scavengeOfBare)} | ${verdict(atMost(r.scavengeOfBare, 2))} |`)
  }

  if (notes.length > 0) out.push('', ...notes.map(n => `- ${n}`))
  if (profile !== undefined) out.push('', profile)
  return out.join('\n') + '\n'
}
