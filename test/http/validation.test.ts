import t from 'tap'
import { startApp } from '../helpers.js'

// Bad input on every route gets a specific 4xx with `{code, message}`, never
// a 5xx. These need no builds to run.

t.test('bad input gets a specific 4xx with a clear message', async (t) => {
  const { app } = await startApp(t)
  const put = (name: string, payload: unknown) =>
    app.inject({ method: 'PUT', url: `/v1/streams/${name}`, payload: payload as object })
  t.equal((await put('ok', { config: { url: 'file:///tmp/x', ref: 'main' } })).statusCode, 201)

  const cases: Array<[string, () => Promise<{ statusCode: number, json: () => any }>, number, RegExp]> = [
    ['bad stream name', () => put('Bad_Name!', { config: { url: 'file:///x', ref: 'main' } }), 400, /params\/stream: stream names/],
    ['unknown body field', () => put('s', { config: { url: 'file:///x', ref: 'main' }, nope: 1 }), 400, /body: Unrecognized key: "nope"/],
    ['missing config', () => put('s', {}), 400, /body\/config/],
    ['scheme not allowed', () => put('s', { config: { url: 'ftp://h/x', ref: 'main' } }), 422, /scheme ftp is not allowed/],
    ['password in URL', () => put('s', { config: { url: 'https://u:p@h/x', ref: 'main' } }), 422, /password/],
    ['option injection', () => put('s', { config: { url: '--upload-pack=x', ref: 'main' } }), 422, /must not start with "-"/],
    ['bad ref', () => put('s', { config: { url: 'file:///x', ref: '-x' } }), 400, /ref must be/],
    ['bad recipe', () => put('s', { config: { url: 'file:///x', ref: 'm' }, recipe: [['fetch']] }), 400, /exactly one "build"/],
    ['boot test guest larger than the container', () => put('s', {
      config: { url: 'file:///x', ref: 'm' }, resources: { memoryBytes: 2 * 1024 ** 3 }, bootTest: { enabled: true }
    }), 400, /body\/bootTest\.memoryMiB: a 2048 MiB guest needs 2\.5 GiB/],
    ['boot test mode', () => put('s', { config: { url: 'file:///x', ref: 'm' }, bootTest: { enabled: true, mode: 'maybe' } }),
      400, /body\/bootTest\/mode/],
    ['allowed unit not a unit name', () => put('s', {
      config: { url: 'file:///x', ref: 'm' }, bootTest: { enabled: true, allowFailedUnits: ['$(reboot)'] }
    }), 400, /units are systemd unit names/],
    ['an arch twice', () => put('s', { config: { url: 'file:///x', ref: 'm' }, arches: ['x86_64', 'aarch64', 'x86_64'] }),
      400, /body\/arches: arches must not repeat an arch/],
    ['more arches than cosa builds', () => put('s', { config: { url: 'file:///x', ref: 'm' }, arches: ['x86_64', 'aarch64', 's390x', 'ppc64le', 'x86_64'] }),
      400, /body\/arches/],
    ['wrong type', () => put('s', { config: { url: 'file:///x', ref: 'm' }, timeoutSeconds: 'soon' }), 400, /timeoutSeconds/],
    ['not JSON', () => app.inject({ method: 'PUT', url: '/v1/streams/s', headers: { 'content-type': 'application/json' }, payload: '{' }), 400, /JSON/],
    ['proto poisoning', () => app.inject({ method: 'PUT', url: '/v1/streams/s', headers: { 'content-type': 'application/json' }, payload: '{"__proto__":{"x":1}}' }), 400, /./],
    ['text body', () => app.inject({ method: 'PUT', url: '/v1/streams/s', headers: { 'content-type': 'text/plain' }, payload: 'x' }), 415, /application\/json/],
    ['too large', () => app.inject({ method: 'PUT', url: '/v1/streams/s', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ x: 'y'.repeat(2 * 1024 * 1024) }) }), 413, /exceeds 1048576 bytes/],
    ['unknown stream', () => app.inject({ method: 'GET', url: '/v1/streams/nope' }), 404, /does not exist/],
    ['submit to unknown stream', () => app.inject({ method: 'POST', url: '/v1/streams/nope/builds', payload: {} }), 404, /register it/],
    ['submit unknown field', () => app.inject({ method: 'POST', url: '/v1/streams/ok/builds', payload: { forse: true } }), 400, /forse/],
    ['submit short commit', () => app.inject({ method: 'POST', url: '/v1/streams/ok/builds', payload: { commit: 'abc' } }), 400, /full git commit/],
    ['submit bad version', () => app.inject({ method: 'POST', url: '/v1/streams/ok/builds', payload: { version: '../x' } }), 400, /version/],
    ['malformed idempotency key', () => app.inject({ method: 'POST', url: '/v1/streams/ok/builds', headers: { 'idempotency-key': 'a b' }, payload: {} }), 400, /malformed/],
    ['repeated idempotency key', () => app.inject({ method: 'POST', url: '/v1/streams/ok/builds', headers: { 'idempotency-key': ['a', 'b'] }, payload: {} }), 400, /more than once/],
    ['unknown build', () => app.inject({ method: 'GET', url: '/v1/builds/nope' }), 404, /does not exist/],
    ['unknown build log', () => app.inject({ method: 'GET', url: '/v1/builds/nope/log' }), 404, /does not exist/],
    ['negative log offset', () => app.inject({ method: 'GET', url: '/v1/builds/nope/log?offset=-1' }), 400, /offset/],
    ['unknown build meta', () => app.inject({ method: 'GET', url: '/v1/builds/nope/meta.json' }), 404, /does not exist/],
    ['cancel unknown build', () => app.inject({ method: 'POST', url: '/v1/builds/nope/cancel' }), 404, /does not exist/],
    ['list: bad state', () => app.inject({ method: 'GET', url: '/v1/builds?state=done' }), 400, /state/],
    ['list: bad limit', () => app.inject({ method: 'GET', url: '/v1/builds?limit=0' }), 400, /limit/],
    ['list: bad cursor', () => app.inject({ method: 'GET', url: '/v1/builds?cursor=zzz' }), 400, /cursor/],
    ['list: unknown parameter', () => app.inject({ method: 'GET', url: '/v1/builds?x=1' }), 400, /x/],
    ['result without token', () => app.inject({ method: 'POST', url: '/v1/builds/nope/result?outcome=built&arch=x86_64', payload: {} }), 401, /bearer token/],
    ['result bad outcome, no token: the token is checked first', () => app.inject({ method: 'POST', url: '/v1/builds/nope/result?outcome=maybe&arch=x86_64', payload: {} }), 401, /bearer token/],
    ['unknown route', () => app.inject({ method: 'GET', url: '/v2/nothing' }), 404, /no route GET \/v2\/nothing/],
    ['wrong method', () => app.inject({ method: 'DELETE', url: '/v1/builds' }), 405, /does not take DELETE: it takes GET, HEAD/],
    ['no such route', () => app.inject({ method: 'GET', url: '/v1/nope' }), 404, /no route/]
  ]
  for (const [name, call, status, message] of cases) {
    const res = await call()
    t.equal(res.statusCode, status, `${name}: status`)
    const body = res.json()
    t.match(body, { code: /^BLD_/, message }, `${name}: ${body.message}`)
  }
})

t.test('idempotent submission', async (t) => {
  const { app } = await startApp(t, { builds: { maxConcurrent: 1 } })
  // An image that does not exist keeps these builds cheap.
  await app.inject({ method: 'PUT', url: '/v1/streams/s', payload: { config: { url: 'file:///nonexistent', ref: 'main' } } })
  const submit = (key: string, payload: object) =>
    app.inject({ method: 'POST', url: '/v1/streams/s/builds', headers: { 'idempotency-key': key }, payload })
  const a = await submit('key-1', { force: true })
  t.equal(a.statusCode, 202)
  t.equal(a.headers.location, `/v1/builds/${a.json().id}`)
  const again = await submit('key-1', { force: true })
  t.equal(again.statusCode, 202)
  t.equal(again.json().id, a.json().id, 'same key and body: the same build')
  t.equal(again.headers['idempotent-replayed'], 'true')
  const other = await submit('key-1', { force: false })
  t.equal(other.statusCode, 422, 'same key, other body')
  t.equal(other.json().code, 'BLD_IDEMPOTENCY_MISMATCH')
  const fresh = await submit('key-2', { force: true })
  t.not(fresh.json().id, a.json().id, 'another key: another build')
  const list = (await app.inject({ url: '/v1/builds?stream=s' })).json()
  t.equal(list.builds.length, 2, 'exactly two builds were admitted')
})

t.test('keyset pagination walks every build once', async (t) => {
  const { app } = await startApp(t, { builds: { maxConcurrent: 1 } })
  await app.inject({ method: 'PUT', url: '/v1/streams/p', payload: { config: { url: 'file:///nonexistent', ref: 'main' } } })
  const ids = []
  for (let i = 0; i < 7; i++) ids.push((await app.inject({ method: 'POST', url: '/v1/streams/p/builds', payload: {} })).json().id)
  const seen: string[] = []
  let cursor: string | undefined
  do {
    const page = (await app.inject({ url: `/v1/builds?stream=p&limit=3${cursor ? `&cursor=${cursor}` : ''}` })).json()
    seen.push(...page.builds.map((b: { id: string }) => b.id))
    cursor = page.nextCursor
  } while (cursor)
  t.same(seen, ids.reverse(), 'newest first, no gaps, no repeats')
})

t.test('a known path with a method it does not take is 405 with Allow, an unknown path 404', async (t) => {
  const { app } = await startApp(t)
  const patch = await app.inject({ method: 'PATCH', url: '/v1/streams/s' })
  t.equal(patch.statusCode, 405)
  t.equal(patch.headers.allow, 'DELETE, GET, HEAD, PUT')
  t.same(patch.json(), { code: 'BLD_METHOD_NOT_ALLOWED', message: '/v1/streams/s does not take PATCH: it takes DELETE, GET, HEAD, PUT' })
  const post = await app.inject({ method: 'POST', url: '/v1/builds/x/artifacts/qemu' })
  t.equal(post.statusCode, 405)
  t.equal(post.headers.allow, 'GET, HEAD')
  t.equal((await app.inject({ method: 'PATCH', url: '/v1/streams/s/builds/builds.json' })).headers.allow, 'GET, HEAD')
  const unknown = await app.inject({ method: 'GET', url: '/v1/nothing/here' })
  t.equal(unknown.statusCode, 404)
  t.equal(unknown.json().code, 'BLD_ROUTE_NOT_FOUND')
})
