// A throwaway redis-server for the Redis modes of the bench and the soak:
// 127.0.0.1, a free port, no persistence, killed with the bench.
import { spawn } from 'node:child_process'
import { connect, createServer } from 'node:net'
import { once } from 'node:events'
import { Redis } from 'ioredis'

async function freePort () {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address()
  await new Promise(resolve => server.close(resolve))
  return port
}

async function answers (port) {
  return await new Promise(resolve => {
    const socket = connect(port, '127.0.0.1', () => socket.write('PING\r\n'))
    socket.setTimeout(500, () => { socket.destroy(); resolve(false) })
    socket.once('error', () => resolve(false))
    socket.once('data', (data) => { socket.destroy(); resolve(data.toString().startsWith('+PONG')) })
  })
}

export async function startRedis () {
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--loglevel', 'warning'], { stdio: 'ignore' })
  process.once('exit', () => child.kill('SIGKILL'))
  const url = `redis://127.0.0.1:${port}`
  // Ready once it answers a PING.
  const deadline = Date.now() + 10_000
  while (!await answers(port)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error('redis-server did not start (is it installed? bash scripts/system-deps.sh)')
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  const admin = new Redis(url)
  admin.on('error', () => {})
  const stat = async (section, name) => Number(new RegExp(`^${name}:(\\d+)`, 'm').exec(await admin.info(section))?.[1])
  return {
    url,
    /** Commands Redis has processed so far (the INFO call itself counts one). */
    commands: () => stat('stats', 'total_commands_processed'),
    usedMemory: () => stat('memory', 'used_memory'),
    keys: () => admin.dbsize(),
    /** Every key with its remaining time to live in ms (-1: none), prefix removed, sorted. */
    async keysWithTtl (prefix = 'fnmcp:') {
      const keys = (await admin.keys('*')).sort()
      if (keys.length === 0) return []
      const ttls = await admin.pipeline(keys.map(k => ['pttl', k])).exec()
      return keys.map((key, i) => ({ key: key.startsWith(prefix) ? key.slice(prefix.length) : key, ttlMs: ttls[i][1] }))
    },
    /** Sessions in Redis (key prefix `prefix`), in all and per subject, as the server's `sessions` answer counts them. */
    async sessions (prefix = 'fnmcp:') {
      const ids = await admin.keys(`${prefix}session:*`)
      const owners = ids.length === 0 ? [] : await admin.pipeline(ids.map(id => ['hget', id, 'owner'])).exec()
      const bySubject = {}
      for (const [, owner] of owners) {
        if (typeof owner !== 'string') continue
        const subject = JSON.parse(owner)[0].replace(/^(user|client):/, '')
        bySubject[subject] = (bySubject[subject] ?? 0) + 1
      }
      return { size: Object.values(bySubject).reduce((a, b) => a + b, 0), bySubject }
    },
    async stop () {
      admin.disconnect()
      child.kill('SIGKILL')
      await once(child, 'exit').catch(() => {})
    }
  }
}
