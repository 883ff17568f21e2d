// Child processes for the benchmark: every server runs in its own process (its
// own event loop), and every child started here is killed when the bench ends,
// however it ends.
import { fork } from 'node:child_process'
import { once } from 'node:events'

const children = new Set()

/** The environment a child gets: nothing from the caller's shell but PATH and HOME, so no stray config leaks in. */
export function cleanEnv (extra = {}) {
  return { PATH: process.env.PATH, HOME: process.env.HOME, ...extra }
}

/**
 * Forks `file`, sends it `{ type: 'start', options }` and resolves with the
 * child and its `ready` message. Every child answers the protocol of
 * bench/servers/serve.js: start → ready, ask → reply, stop → exits.
 * `stdout: 'pipe'` hands the child's standard output to the caller (child.stdout).
 */
export async function startChild (file, { name, options = {}, env = cleanEnv(), execArgv = [], timeoutMs = 20_000, stdout = 'inherit' } = {}) {
  const child = fork(file, [], { env, execArgv, stdio: ['ignore', stdout, 'inherit', 'ipc'] })
  child.benchName = name ?? file
  children.add(child)
  child.once('exit', () => children.delete(child))
  child.send({ type: 'start', options })
  const ready = await waitFor(child, m => m.type === 'ready' || m.type === 'failed', timeoutMs, 'start')
  if (ready.type === 'failed') throw new Error(`${child.benchName} failed to start: ${ready.error}`)
  return { child, ready }
}

/** The next message from `child` matching `test`; rejects if the child exits first or time runs out. */
export function waitFor (child, test, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`${child.benchName}: no ${what} within ${timeoutMs} ms`)), timeoutMs)
    const onMessage = (msg) => { if (test(msg)) done(null, msg) }
    const onExit = (code, signal) => done(new Error(`${child.benchName} exited (${signal ?? code}) before ${what}`))
    function done (err, msg) {
      clearTimeout(timer)
      child.off('message', onMessage)
      child.off('exit', onExit)
      if (err) reject(err)
      else resolve(msg)
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

let asked = 0
/** Request/response over IPC: `{ type: 'ask', id, what }` → `{ type: 'reply', id, data }`. */
export async function ask (child, what, timeoutMs = 10_000) {
  const id = ++asked
  child.send({ type: 'ask', id, what })
  const reply = await waitFor(child, m => m.type === 'reply' && m.id === id, timeoutMs, `reply to ${what}`)
  if (reply.error !== undefined) throw new Error(`${child.benchName}: ${reply.error}`)
  return reply.data
}

/** Asks the child to stop cleanly (so --cpu-prof writes its profile); kills it if it does not within `graceMs`. */
export async function stopChild (child, graceMs = 5000) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  if (child.connected) child.send({ type: 'stop' })
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
  await exited
  clearTimeout(timer)
}

export async function stopAll () {
  await Promise.all([...children].map(child => stopChild(child, 3000)))
}

/** Last resort, synchronous (for 'exit' and signal handlers): no child outlives the bench. */
export function killAll () {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
}

/**
 * Kills every child on any way out of the parent, and bounds the whole run:
 * past `deadlineMs` the bench gives up, kills its children and exits non-zero.
 */
export function guardProcess (deadlineMs) {
  process.once('exit', killAll)
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.once(signal, () => {
      console.error(`bench: ${signal}, stopping`)
      killAll()
      process.exit(130)
    })
  }
  process.once('uncaughtException', (err) => {
    console.error('bench: uncaught exception', err)
    killAll()
    process.exit(1)
  })
  process.once('unhandledRejection', (err) => {
    console.error('bench: unhandled rejection', err)
    killAll()
    process.exit(1)
  })
  const deadline = setTimeout(() => {
    console.error(`bench: still running after ${Math.round(deadlineMs / 1000)} s, giving up`)
    killAll()
    process.exit(1)
  }, deadlineMs)
  deadline.unref()
}
