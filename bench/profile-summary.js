// Self time by function from a V8 .cpuprofile (node --cpu-prof), and by
// package. Usage: node bench/profile-summary.js <file.cpuprofile> [top=25]
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { resolve } from 'node:path'

const root = fileURLToPath(new URL('..', import.meta.url))

/** A short, readable location: `fastify/lib/route.js`, `dist/plugins/mcp.js`, `node:internal/...`. */
export function shortUrl (url) {
  if (url === '') return ''
  let path = url.startsWith('file://') ? fileURLToPath(url) : url
  const nm = path.lastIndexOf('/node_modules/')
  if (nm !== -1) return path.slice(nm + '/node_modules/'.length)
  if (path.startsWith(root)) path = path.slice(root.length)
  return path
}

/** Which package (or area) a location belongs to, for the coarse breakdown. */
export function areaOf (url) {
  if (url === '') return '(native / VM)'
  if (url.startsWith('node:')) return 'node core'
  const short = shortUrl(url)
  if (short === url && !url.startsWith('file://')) return 'node core'
  if (short.startsWith('dist/')) return 'this server (dist/)'
  if (short.startsWith('bench/')) return 'bench'
  const parts = short.split('/')
  return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]
}

/**
 * Self time per function: each sample's interval (the delta to the next
 * sample) goes to the node on top of the stack, as Chrome DevTools counts it.
 */
export function summarize (profile, top = 25) {
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const selfUs = new Map()
  const { samples, timeDeltas } = profile
  for (let i = 0; i < samples.length; i++) {
    const dt = i + 1 < timeDeltas.length ? timeDeltas[i + 1] : 0
    selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + Math.max(0, dt))
  }
  const functions = new Map()
  const areas = new Map()
  let total = 0
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id).callFrame
    const name = functionName === '' ? '(anonymous)' : functionName
    const where = url === '' ? '' : `${shortUrl(url)}:${lineNumber + 1}`
    const key = `${name}\t${where}`
    functions.set(key, (functions.get(key) ?? 0) + us)
    const area = name.startsWith('(') && url === '' ? name : areaOf(url)
    areas.set(area, (areas.get(area) ?? 0) + us)
    total += us
  }
  const rank = (map) => [...map].sort((a, b) => b[1] - a[1])
  return {
    inclusive: inclusiveOf(profile, selfUs, total, url => shortUrl(url).startsWith('dist/'), Math.min(top, 15)),
    totalMs: total / 1000,
    functions: rank(functions).slice(0, top).map(([key, us]) => {
      const [name, where] = key.split('\t')
      return { name, where, ms: us / 1000, pct: 100 * us / total }
    }),
    areas: rank(areas).map(([area, us]) => ({ area, ms: us / 1000, pct: 100 * us / total }))
  }
}

/**
 * Total (self + callees) time of the functions whose script passes `keep`,
 * each stack counted once per function (recursion is not double counted).
 */
function inclusiveOf (profile, selfUs, total, keep, top) {
  const children = new Map(profile.nodes.map(n => [n.id, n.children ?? []]))
  const byId = new Map(profile.nodes.map(n => [n.id, n]))
  const totals = new Map()
  const keyOf = ({ functionName, url, lineNumber }) => `${functionName === '' ? '(anonymous)' : functionName}\t${shortUrl(url)}:${lineNumber + 1}`
  const root = profile.nodes[0].id
  // Iterative DFS: returns each node's subtree time, adding it to its function unless an ancestor is the same function.
  const stack = [{ id: root, open: new Set(), phase: 0 }]
  const subtree = new Map()
  while (stack.length > 0) {
    const frame = stack[stack.length - 1]
    const node = byId.get(frame.id)
    const key = keep(node.callFrame.url) ? keyOf(node.callFrame) : undefined
    if (frame.phase === 0) {
      frame.phase = 1
      const open = key !== undefined && !frame.open.has(key) ? new Set([...frame.open, key]) : frame.open
      frame.counts = key !== undefined && !frame.open.has(key)
      for (const child of children.get(frame.id)) stack.push({ id: child, open, phase: 0 })
      continue
    }
    stack.pop()
    let us = selfUs.get(frame.id) ?? 0
    for (const child of children.get(frame.id)) us += subtree.get(child) ?? 0
    subtree.set(frame.id, us)
    if (frame.counts) totals.set(key, (totals.get(key) ?? 0) + us)
  }
  return [...totals].sort((a, b) => b[1] - a[1]).slice(0, top).map(([key, us]) => {
    const [name, where] = key.split('\t')
    return { name, where, ms: us / 1000, pct: 100 * us / total }
  })
}

export function summaryMarkdown (summary, title = 'CPU profile') {
  const lines = [
    `### ${title}: top ${summary.functions.length} functions by self time (of ${summary.totalMs.toFixed(0)} ms sampled)`,
    '',
    '| # | self ms | self % | function | location |',
    '| ---: | ---: | ---: | --- | --- |',
    ...summary.functions.map((f, i) => `| ${i + 1} | ${f.ms.toFixed(1)} | ${f.pct.toFixed(1)} | \`${f.name}\` | ${f.where === '' ? '' : `\`${f.where}\``} |`),
    '',
    '| area (by script) | self ms | self % |',
    '| --- | ---: | ---: |',
    ...summary.areas.slice(0, 15).map(a => `| ${a.area} | ${a.ms.toFixed(1)} | ${a.pct.toFixed(1)} |`),
    '',
    '| this server\'s functions by total time (self + callees) | total ms | total % | location |',
    '| --- | ---: | ---: | --- |',
    ...summary.inclusive.map(f => `| \`${f.name}\` | ${f.ms.toFixed(1)} | ${f.pct.toFixed(1)} | \`${f.where}\` |`)
  ]
  return lines.join('\n')
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const file = process.argv[2]
  if (file === undefined) {
    console.error('usage: node bench/profile-summary.js <file.cpuprofile> [top]')
    process.exit(2)
  }
  const top = Number(process.argv[3] ?? 25)
  console.log(summaryMarkdown(summarize(JSON.parse(readFileSync(file, 'utf8')), top), file))
}
