import t from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { MemorySessionStore } from '../../../lib/mcp/session-store.js'
import { CLIENT_INFO_MAX_LENGTH, clientInfoOf } from '../../../lib/mcp/protocol.js'

// A full GC on demand, so that the heap is measured without garbage in it.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const SESSIONS = 10_000
/** What a session may cost with the largest clientInfo a client can leave in it (README, threat model). */
const BUDGET_BYTES = 1024

function heapAfterGc (): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

t.test(`${SESSIONS} sessions opened with oversized clientInfo hold at most ${BUDGET_BYTES} B each`, async t => {
  const sessions = new MemorySessionStore({ idleTtlMs: 60_000, maxSessions: SESSIONS, maxSessionsPerSubject: 100 })
  t.teardown(() => sessions.close())
  const before = heapAfterGc()
  for (let i = 0; i < SESSIONS; i++) {
    // A fresh 4 kB name and version per session, as initialize would parse them from a client's body.
    const filler = `${i}`.padEnd(4096, 'x')
    const clientInfo = clientInfoOf({ name: `n${filler}`, version: `v${filler}`, title: filler })
    sessions.create(`user_${i % 100}`, '2025-06-18', clientInfo)
  }
  const perSession = (heapAfterGc() - before) / SESSIONS
  t.equal(sessions.size, SESSIONS)
  const sample = sessions.values().next().value
  t.equal(sample?.clientInfo?.name?.length, CLIENT_INFO_MAX_LENGTH)
  t.equal(sample?.clientInfo?.version?.length, CLIENT_INFO_MAX_LENGTH)
  t.comment(`heap per session with ${CLIENT_INFO_MAX_LENGTH}-character name and version: ${Math.round(perSession)} B`)
  // Kept as slices, the names would keep their 4 kB parents (8 kB a session).
  t.ok(perSession < BUDGET_BYTES, `${Math.round(perSession)} B per session`)
})
