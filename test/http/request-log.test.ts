import t from 'tap'
import { redactUrl, requestId } from '../../src/http/request-log.js'
import { startApp, tempDir } from '../helpers.js'
import { startServer, sleep } from '../server-process.js'

const idOf = (headers: Record<string, string>) => requestId({ headers } as never)

t.test('a request id is the caller\'s when sane, else a new one', async (t) => {
  t.equal(idOf({ 'x-request-id': 'ci-job-42.step:3' }), 'ci-job-42.step:3', 'a sane id is kept')
  for (const bad of ['two words', 'x'.repeat(129), 'a\nb', '']) {
    const id = idOf({ 'x-request-id': bad })
    t.not(id, bad, `replaced: ${JSON.stringify(bad.slice(0, 20))}`)
    t.match(id, /^[A-Za-z0-9_-]{8}-[0-9a-z]+$/, 'by a generated one')
  }
  t.not(idOf({}), idOf({}), 'generated ids differ')
})

t.test('query secrets are redacted from logged URLs', async (t) => {
  t.equal(redactUrl('/v1/events?stream=a&token=abc'), '/v1/events?stream=a&token=%5Bredacted%5D')
  t.equal(redactUrl('/v1/builds?limit=5'), '/v1/builds?limit=5', 'other parameters stay')
  t.equal(redactUrl('/v1/builds'), '/v1/builds')
})

t.test('every answer carries X-Request-Id; a 5xx body names it', async (t) => {
  const h = await startApp(t)
  const mine = await h.app.inject({ url: '/v1/builds/nope', headers: { 'x-request-id': 'pipeline-7' } })
  t.equal(mine.statusCode, 404)
  t.equal(mine.headers['x-request-id'], 'pipeline-7', 'the caller\'s id comes back')
  const fresh = await h.app.inject({ url: '/healthz' })
  t.match(fresh.headers['x-request-id'], /^[A-Za-z0-9_-]{8}-[0-9a-z]+$/, 'a generated id comes back')
  const unknown = await h.app.inject({ method: 'DELETE', url: '/nowhere' })
  t.ok(unknown.headers['x-request-id'], 'also on the not-found answer')
  // The id is put on in each route's handler, the error handler, the
  // not-found handler and fastify's framework errors: one of each kind.
  const kinds: Array<[string, { method?: 'GET' | 'PUT' | 'DELETE', url: string, headers?: Record<string, string>, payload?: string }, number]> = [
    ['a route\'s answer', { url: '/v1/streams' }, 200],
    ['a validation refusal', { url: '/v1/builds?limit=0' }, 400],
    ['a body refused', { method: 'PUT', url: '/v1/streams/s', headers: { 'content-type': 'application/json' }, payload: '{' }, 400],
    ['a method the path does not take', { method: 'DELETE', url: '/v1/builds' }, 405],
    ['a malformed URL', { url: '/v1/builds/%zz' }, 400]
  ]
  for (const [kind, request, status] of kinds) {
    const res = await h.app.inject({ ...request, headers: { ...request.headers, 'x-request-id': `kind-${status}` } })
    t.equal(res.statusCode, status, `${kind}: ${res.body.slice(0, 200)}`)
    t.equal(res.headers['x-request-id'], `kind-${status}`, `${kind}: the id comes back`)
  }

  // The database goes away under the server: a real internal error.
  await h.app.core.store.close()
  const broken = await h.app.inject({ url: '/v1/builds/01m8pznfy2ja7nck8zax7za2f7', headers: { 'x-request-id': 'find-me-1' } })
  t.equal(broken.statusCode, 500)
  t.equal(broken.json().code, 'BLD_INTERNAL')
  t.match(broken.json().message, /request id find-me-1/, 'the message names the request id')
})

t.test('the process logs one line per answer, with its request id; successful reads only at debug', async (t) => {
  for (const level of ['info', 'debug']) {
    const server = await startServer(t, await tempDir(t, 'cosa-buildd-log-'), 1, { env: { COSA_BUILDD_LOG_LEVEL: level } })
    const read = await fetch(`${server.url}/v1/streams`, { headers: { 'x-request-id': `read-${level}` } })
    await read.arrayBuffer()
    const refused = await fetch(`${server.url}/v1/builds/nope`, { headers: { 'x-request-id': `refused-${level}` } })
    await refused.arrayBuffer()
    await sleep(300)
    const lines = server.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l))
    const of = (id: string) => lines.filter((l) => l.reqId === id)
    t.same(of(`refused-${level}`).map((l) => [l.msg, l.status, l.code, l.route]),
      [['answered', 404, 'BLD_BUILD_NOT_FOUND', '/v1/builds/:id']], `${level}: a refusal is one line, with its code`)
    t.equal(of(`read-${level}`).length, level === 'debug' ? 1 : 0, `${level}: a successful read is ${level === 'debug' ? 'logged' : 'not logged'}`)
    t.notOk(lines.some((l) => l.msg === 'incoming request' || l.msg === 'request completed'), `${level}: fastify's own two lines are off`)
  }
})
