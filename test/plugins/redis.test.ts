import t from 'tap'
import Fastify from 'fastify'
import redisPlugin from '../../plugins/redis.js'
import { RedisServer } from '../helpers/redis-server.js'
import { buildApp } from '../helpers/build-app.js'

async function until (what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 20))
  }
}

t.test('the plugin connects, prefixes keys and closes its connections with the app', async t => {
  const server = await RedisServer.start(t)
  const app = Fastify()
  await app.register(redisPlugin, { url: server.url, keyPrefix: 'test-a:' })
  await app.ready()
  await until('ready', () => app.redis.available)
  t.equal(app.redis.key('session', 'abc'), 'test-a:session:abc')
  await app.redis.client.set(app.redis.key('k'), 'v')
  t.equal(await app.redis.client.get('test-a:k'), 'v', 'the key is in the deployment namespace')
  const sub = app.redis.subscriber
  t.equal(app.redis.subscriber, sub, 'one subscriber connection, made on first use')
  await until('subscriber ready', () => sub.status === 'ready')
  await app.close()
  await until('both connections ended', () => app.redis.client.status === 'end' && sub.status === 'end')
  t.pass('both connections end with the app')
})

t.test('a bad url is refused at registration', async t => {
  const app = Fastify()
  await t.rejects(async () => { await app.register(redisPlugin, { url: 'http://x' }) }, /redis: "url" must be a redis:\/\/ or rediss:\/\/ URL/)
})

t.test('the app boots without Redis, is not ready and says why, then becomes ready when Redis comes up', async t => {
  const server = await RedisServer.start(t, { started: false })
  const ctx = await buildApp(t, { REDIS_URL: server.url, REDIS_CONNECT_TIMEOUT_MS: '2000' }, { skipOverride: true })
  await until('a first connection failure', () => ctx.app.redis.lastError !== undefined)
  let res = await ctx.app.inject({ url: '/ready' })
  t.equal(res.statusCode, 503)
  t.equal(res.headers['retry-after'], '5')
  t.equal(res.json().status, 'not_ready')
  t.match(res.json().checks.redis, /^unavailable: .*ECONNREFUSED/)
  t.equal((await ctx.app.inject({ url: '/health' })).statusCode, 200, 'alive all the same')

  // The app keeps retrying the same address: bring Redis up there.
  await server.start()
  await until('reconnected', () => ctx.app.redis.available)
  res = await ctx.app.inject({ url: '/ready' })
  t.equal(res.statusCode, 200)
  t.same(res.json(), { status: 'ready', checks: { config: 'ok', signingKeys: 'ok', redis: 'ok' } })
  t.equal(ctx.logs.filter(line => line.includes('"Redis error"')).length, 1, 'one failure logged once, not once per retry')
})

t.test('losing Redis makes the replica not ready until it returns', async t => {
  const server = await RedisServer.start(t)
  const ctx = await buildApp(t, { REDIS_URL: server.url }, { skipOverride: true })
  await until('ready', () => ctx.app.redis.available)
  const sub = ctx.app.redis.subscriber
  await until('subscriber ready', () => sub.status === 'ready')
  await server.stop()
  await until('lost', () => !ctx.app.redis.available)
  t.equal((await ctx.app.inject({ url: '/ready' })).statusCode, 503)
  t.ok(ctx.logs.some(line => line.includes('Redis connection lost')))
  await server.start()
  await until('back', () => ctx.app.redis.available)
  t.equal((await ctx.app.inject({ url: '/ready' })).statusCode, 200)
  await until('subscriber back', () => sub.status === 'ready')
  t.pass('the subscriber reconnects too')
})

t.test('an app whose Redis never answered closes at once, without waiting for it', async t => {
  const server = await RedisServer.start(t, { started: false })
  const app = Fastify()
  await app.register(redisPlugin, { url: server.url, connectTimeoutMs: 200 })
  await app.ready()
  const started = Date.now()
  await app.close()
  t.ok(Date.now() - started < 1000, 'closed without waiting on a reconnect')
  await until('ended', () => app.redis.client.status === 'end')
  t.pass('and it stops reconnecting')
})
