// The markdown summary of bench/soak.js.
import { fmt, mb, ms } from './report.js'

const COLUMNS = ['tools/call', 'tools/list', 'initialize', 'notifications/initialized', 'DELETE']
const ROLES = ['steady', 'churn', 'idle']
const sum = (values) => values.reduce((a, b) => a + b, 0)

function memoryRow (label, m) {
  return `| ${label} | ${mb(m.rss)} | ${mb(m.heapUsed)} | ${mb(m.heapTotal)} | ${mb(m.external)} |`
}

export function soakMarkdown ({ machine, settings, workers, idle, record, samples, memory, sessions, cpu, upstream, loadSec, startedAt, elapsedSec }) {
  const { rows, overall } = record.latencySummary()
  const errors = record.errorCount
  const out = []
  out.push('## Soak (issue 5, point 6)', '')
  out.push(errors === 0 ? '**Passed: no errors.**' : `**Failed: ${fmt(errors)} errors.**`, '')
  out.push(`Machine: ${machine.nproc} × ${machine.cpu}, ${machine.memGb.toFixed(1)} GiB, Linux ${machine.kernel}, Node ${machine.node}. ` +
    `Run ${startedAt}, ${Math.round(elapsedSec)} s in all; load average ${machine.loadStart[0].toFixed(2)} at the start, ${machine.loadEnd[0].toFixed(2)} at the end ` +
    '(the load generator and the server share these cores).')
  out.push('Server: `dist/app.js` registered as fastify-cli does, alone in a child process (node --expose-gc, used only for the settled samples), logger at warn; ' +
    `its defaults except the per-subject rate limit (raised out of reach), MCP_SESSION_IDLE_TTL_SEC=${settings.idleTtlSec} and MCP_MAX_SESSIONS_PER_SUBJECT=${idle.cap} (the default, set so the checks know it). ` +
    'The JWKS issuer and a fake Alpha Vantage run in a third process; every token is a real RS256 JWT.')
  out.push(`Load: ${fmt(loadSec)} s, ${settings.connections} workers in one process on an undici Agent (keep-alive, one request in flight per worker), each kind of client its own token subject: ` +
    `**steady** ${workers.steady} workers, one long-lived session each, \`tools/call get_news_sentiment\` (a cache hit) with \`tools/list\` every fourth request; ` +
    `**churn** ${workers.churn} workers looping initialize → notifications/initialized → tools/call → DELETE; ` +
    `**idle** ${workers.idle} workers opening bursts of ${idle.burst} sessions (past the cap of ${idle.cap}, so the oldest are evicted), ` +
    `probing the first (404 expected) and the last (200), then leaving them untouched ${idle.expiryWaitSec} s: the server must have swept every one (checked through \`app.mcpSessions\`, then a 404 probe).`, '')

  out.push('| | |', '| --- | ---: |')
  out.push(`| requests | ${fmt(overall.count)} (${fmt(overall.count / loadSec)} req/s) |`)
  out.push(`| errors (transport, unexpected status, JSON-RPC error, isError, failed check) | ${fmt(errors)} |`)
  out.push(`| latency p50 / p99, all requests | ${ms(overall.p50)} / ${ms(overall.p99)} ms |`)
  out.push(`| CPU, share of one core: server / load generator | ${fmt(cpu.server)} % / ${fmt(cpu.load)} % |`)
  out.push(`| RSS: start → end of load → after the drain | ${mb(memory.start.rss)} → ${mb(memory.endOfLoad.rss)} → ${mb(memory.end.rss)} MB |`)
  out.push(`| heapUsed after full GC: start → after the drain | ${mb(memory.start.heapUsed)} → ${mb(memory.end.heapUsed)} MB (${memory.end.heapUsed >= memory.start.heapUsed ? '+' : ''}${mb(memory.end.heapUsed - memory.start.heapUsed)} MB) |`)
  out.push(`| sessions at the end of the load | ${fmt(sessions.endOfLoad.size)} (${Object.entries(sessions.endOfLoad.bySubject).map(([s, n]) => `${s} ${n}`).join(', ') || 'none'}) |`)
  out.push(`| sessions after the drain | ${fmt(sessions.afterDrain.size)} (steady sessions deleted, then ${fmt(sessions.drainSec)} s for the rest to expire) |`)
  out.push(`| idle bursts / expiry checks | ${idle.bursts} bursts (${fmt(idle.opened)} sessions) / ${idle.expiredChecks} |`)
  out.push(`| upstream calls / JWKS fetches during the load | ${fmt(upstream.calls)} / ${fmt(upstream.jwks)} |`)

  out.push('', '### Requests by client and kind', '')
  out.push('| client | kind | requests | expected 404 | p50 ms | p99 ms |', '| --- | --- | ---: | ---: | ---: | ---: |')
  const order = (r) => [ROLES.indexOf(r.role), COLUMNS.includes(r.kind) ? COLUMNS.indexOf(r.kind) : COLUMNS.length]
  rows.sort((a, b) => order(a)[0] - order(b)[0] || order(a)[1] - order(b)[1])
  for (const r of rows) out.push(`| ${r.role} | ${r.kind} | ${fmt(r.count)} | ${fmt(r.expected)} | ${ms(r.p50)} | ${ms(r.p99)} |`)

  out.push('', `### Throughput over time (requests per ${settings.intervalSec} s, by the interval they finished in; memory, sessions and the 1-min load average sampled at the interval's end: other work on these cores shows there)`, '')
  out.push(`| s | ${COLUMNS.join(' | ')} | probes | req/s | errors | RSS MB | heapUsed MB | sessions | load avg |`)
  out.push(`| ---: | ${COLUMNS.map(() => '---:').join(' | ')} | ---: | ---: | ---: | ---: | ---: | ---: | ---: |`)
  record.intervals.forEach((interval, i) => {
    const from = i * settings.intervalSec
    const span = Math.min(settings.intervalSec, loadSec - from)
    const total = sum(Object.values(interval.byKind))
    const probes = sum(Object.entries(interval.byKind).filter(([k]) => k.startsWith('probe')).map(([, n]) => n))
    // The sample taken as this interval ended (the last one: when the load stopped).
    const sample = samples.find(x => Math.round(x.at / settings.intervalSec) === i + 1)
    // A last sliver (requests in flight when the load stopped) has no meaningful rate.
    out.push(`| ${from}–${fmt(from + span, span < settings.intervalSec ? 1 : 0)} | ${COLUMNS.map(k => fmt(interval.byKind[k] ?? 0)).join(' | ')} | ${fmt(probes)} | ${span >= 1 ? fmt(total / span) : '–'} | ${fmt(interval.errors)} | ` +
      (sample === undefined ? '| | | |' : `${mb(sample.rss)} | ${mb(sample.heapUsed)} | ${fmt(sample.sessions)} | ${sample.load.toFixed(2)} |`))
  })

  out.push('', '### Server memory', '')
  out.push('| when | RSS MB | heapUsed MB | heapTotal MB | external MB |', '| --- | ---: | ---: | ---: | ---: |')
  out.push(memoryRow('booted', memory.boot))
  out.push(memoryRow('start (warm cache, after full GC)', memory.start))
  out.push(memoryRow('end of the load', memory.endOfLoad))
  out.push(memoryRow('after the drain (no sessions, after full GC)', memory.end))

  if (errors > 0) {
    out.push('', '### Errors', '')
    for (const [category, count] of record.errors) out.push(`- ${category}: ${fmt(count)}`)
    out.push('', 'First samples:', '', ...record.samples.map(s => `- ${s}`))
  }
  return out.join('\n') + '\n'
}
