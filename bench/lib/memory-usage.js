// A server child's memory, as its own process sees it.
import { setImmediate as tick } from 'node:timers/promises'

export function memoryUsage () {
  const { rss, heapTotal, heapUsed, external, arrayBuffers } = process.memoryUsage()
  return { rss, heapTotal, heapUsed, external, arrayBuffers }
}

/** After full collections (the process runs with --expose-gc): what is still reachable, not what awaits the collector. */
export async function settledMemoryUsage () {
  if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc')
  for (let i = 0; i < 4; i++) {
    globalThis.gc()
    await tick()
  }
  return memoryUsage()
}
