import { spawn, type ChildProcessByStdio } from 'node:child_process'
import { once } from 'node:events'
import type { Readable } from 'node:stream'
import type { Test } from 'tap'

export interface ServerProcess {
  child: ChildProcessByStdio<null, Readable, Readable>
  /** Everything the process wrote so far, stdout and stderr. */
  output: () => string
  /** Resolves with [code, signal] when the process exits. */
  exited: Promise<unknown[]>
}

/**
 * Runs a server command (node with this process's loader flags, so that
 * `.ts` sources load) with its output captured; waits until `readyUrl`
 * answers 2xx. Killed at the end of the test if still running.
 */
export async function startServerProcess (t: Test, args: string[], env: NodeJS.ProcessEnv, readyUrl: string, timeoutMs = 30_000): Promise<ServerProcess> {
  const child = spawn(process.execPath, [...process.execArgv, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', chunk => { output += String(chunk) })
  child.stderr.on('data', chunk => { output += String(chunk) })
  const exited = once(child, 'exit')
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      if ((await fetch(readyUrl)).ok) break
    } catch {}
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`server did not become ready:\n${output}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
  return { child, output: () => output, exited }
}
