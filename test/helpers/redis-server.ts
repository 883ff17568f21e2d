import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Socket } from 'node:net'
import type { Test } from 'tap'
import Fastify from 'fastify'
import { freePort } from './mcp-app.js'
import { SharedRedis } from '../../plugins/redis.js'

/** Polls until `check` holds (Redis events arrive on their own schedule). */
export async function until (what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

/** The app's own Redis connection class, connected and ready, closed when the test ends. */
export async function sharedRedis (t: Test, server: RedisServer, keyPrefix = 'test:'): Promise<SharedRedis> {
  const shared = new SharedRedis({ url: server.url, keyPrefix, connectTimeoutMs: 500, commandTimeoutMs: 500 }, Fastify().log)
  t.teardown(async () => { await shared.close() })
  await until('Redis ready', () => shared.available)
  return shared
}

/**
 * A throwaway redis-server on a free 127.0.0.1 port, no persistence, stopped
 * when the test ends. `stop()` and `start()` let a test take Redis away and
 * bring it back on the same port, as an outage would.
 */
export class RedisServer {
  #child: ChildProcess | undefined
  /** With persistence (append-only file, fsync always), data survive a kill and restart, as with an operator's durable Redis. */
  #dir: string | undefined

  private constructor (readonly port: number) {}

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** A server on a free port (or the given one), started unless `started: false`. */
  static async start (t: Test, opts: { port?: number, started?: boolean, persistent?: boolean } = {}): Promise<RedisServer> {
    const server = new RedisServer(opts.port ?? await freePort())
    if (opts.persistent === true) server.#dir = mkdtempSync(join(tmpdir(), 'redis-test-'))
    t.teardown(async () => {
      await server.stop()
      if (server.#dir !== undefined) rmSync(server.#dir, { recursive: true, force: true })
    })
    if (opts.started !== false) await server.start()
    return server
  }

  async start (): Promise<void> {
    const persistence = this.#dir === undefined
      ? ['--appendonly', 'no']
      : ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', this.#dir]
    const child = spawn('redis-server', [
      '--port', String(this.port), '--bind', '127.0.0.1', '--save', '', ...persistence,
      '--protected-mode', 'yes', '--loglevel', 'warning'
    ], { stdio: 'ignore' })
    this.#child = child
    const deadline = Date.now() + 10_000
    while (!(await this.#answers())) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}: is it installed (apt-get install redis-server)?`)
      if (Date.now() > deadline) throw new Error('redis-server did not start within 10 s')
      await new Promise(resolve => setTimeout(resolve, 25))
    }
  }

  async stop (): Promise<void> {
    const child = this.#child
    this.#child = undefined
    if (child === undefined || child.exitCode !== null) return
    const exited = new Promise(resolve => child.once('exit', resolve))
    child.kill('SIGKILL')
    await exited
  }

  /** A PING over a raw socket: true once the server answers PONG. */
  async #answers (): Promise<boolean> {
    return await new Promise(resolve => {
      const socket = new Socket()
      socket.setTimeout(500)
      socket.once('error', () => resolve(false))
      socket.once('timeout', () => { socket.destroy(); resolve(false) })
      socket.once('data', (data) => { socket.destroy(); resolve(data.toString().startsWith('+PONG')) })
      socket.connect(this.port, '127.0.0.1', () => socket.write('PING\r\n'))
    })
  }
}
