import t from 'tap'
import { pino } from 'pino'
import { Writable } from 'node:stream'
import type { FastifyBaseLogger } from 'fastify'
import { requestLogger } from '../../src/http/request-logger.js'

function capture () {
  const lines: Array<Record<string, unknown>> = []
  const sink = new Writable({ write (chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done() } })
  const logger = pino({ level: 'info' }, sink)
  let children = 0
  const child = logger.child
  // Counts every child() made from this logger or its children (which inherit it).
  logger.child = function (this: typeof logger, ...args: Parameters<typeof child>) { children++; return child.apply(this, args) } as typeof child
  return { logger: logger as unknown as FastifyBaseLogger, lines, children: () => children }
}

t.test('the child is made on first use, and its lines carry the bindings', async (t) => {
  const { logger, lines, children } = capture()
  const log = requestLogger(logger, { reqId: 'r-1' }, {})
  t.equal(log.level, 'info')
  t.equal((log as unknown as { isLevelEnabled: (l: string) => boolean }).isLevelEnabled('debug'), false)
  log.debug('not written')
  t.equal(children(), 1, 'a log call makes the child')
  const before = children()
  log.info({ status: 404 }, 'answered')
  log.error(new Error('boom'), 'request failed')
  log.child({ build: 'b' }).warn('nested')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(children(), before + 1, 'made once (and the nested child)')
  t.same(lines.map((l) => [l.reqId, l.msg, l.status ?? l.build ?? (l.err as { message: string })?.message]),
    [['r-1', 'answered', 404], ['r-1', 'request failed', 'boom'], ['r-1', 'nested', 'b']])
})

t.test('a request that logs nothing makes no child', async (t) => {
  const { logger, children } = capture()
  const log = requestLogger(logger, { reqId: 'r-2' }, {})
  t.equal((log as unknown as { isLevelEnabled: (l: string) => boolean }).isLevelEnabled('info'), true)
  t.equal(children(), 0)
})

t.test('a route\'s own log level gets a real child at once', async (t) => {
  const { logger, lines, children } = capture()
  const log = requestLogger(logger, { reqId: 'r-3' }, { level: 'debug' })
  t.equal(children(), 1)
  t.equal(log.level, 'debug')
  log.debug('written')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(lines.map((l) => [l.reqId, l.msg]), [['r-3', 'written']])
})
