import t from 'tap'
import Fastify from 'fastify'
import { LOGGING_LEVELS, SessionLogger, loggingLevelIndex, logMessage, type LogSink } from '../../../lib/mcp/logging.js'
import type { JsonRpcNotification } from '../../../lib/mcp/protocol.js'

function pinoLines (): { log: ReturnType<typeof Fastify>['log'], lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const app = Fastify({ logger: { level: 'trace', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  return { log: app.log, lines }
}

t.test('the eight RFC 5424 levels, least severe first; nothing else is a level', async t => {
  t.same(LOGGING_LEVELS, ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'])
  t.equal(loggingLevelIndex('debug'), 0)
  t.equal(loggingLevelIndex('emergency'), 7)
  for (const bad of ['DEBUG', 'warn', 'trace', '', 3, undefined, null, { level: 'info' }]) t.equal(loggingLevelIndex(bad), undefined, String(bad))
})

t.test('each message goes to pino at the matching level, and to the client at or above the session\'s level', async t => {
  const { log, lines } = pinoLines()
  const sent: JsonRpcNotification[] = []
  const sink: LogSink = { logLevel: 3, send: n => { sent.push(n) } }
  const logger = new SessionLogger(log, sink)
  logger.debug('d')
  logger.info('i', 'news')
  logger.notice('n')
  logger.warning({ quota: 'near' }, 'quota')
  logger.error('e')
  logger.critical('c')
  logger.alert('a')
  logger.emergency('x')
  // pino: 20 debug, 30 info, 40 warn, 50 error, 60 fatal.
  t.same(lines.map(l => l.level), [20, 30, 30, 40, 50, 50, 60, 60])
  t.same(lines[1], { ...lines[1], mcpLog: { level: 'info', logger: 'news' }, data: 'i', msg: 'tool log' })
  t.same(lines[0]?.mcpLog, { level: 'debug' })
  t.same(sent.map(n => n.params?.level), ['warning', 'error', 'critical', 'alert', 'emergency'])
  t.same(sent[0], { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'warning', logger: 'quota', data: { quota: 'near' } } })
  t.throws(() => logger.log('verbose' as 'info', 'x'), { name: 'TypeError', message: /^mcp: "verbose" is not an MCP logging level/ })
})

t.test('without a sink (no stream to the client), pino only', async t => {
  const { log, lines } = pinoLines()
  new SessionLogger(log, undefined).emergency('only pino')
  t.equal(lines.length, 1)
})

t.test('logMessage leaves out an absent logger', async t => {
  t.same(logMessage('info', 1, undefined), { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 1 } })
})
