import t from 'tap'
import { ensureInertImage, INERT_IMAGE, startApp } from '../helpers.js'

await ensureInertImage()

t.test('polling a build, a stream and the list: 304 until something changes', async (t) => {
  const h = await startApp(t, { builds: { maxConcurrent: 1, defaultImage: INERT_IMAGE } })
  const stream = { config: { url: 'file:///nonexistent', ref: 'main' } }
  t.equal((await h.app.inject({ method: 'PUT', url: '/v1/streams/s', payload: stream })).statusCode, 201)
  const poll = async (url: string, etag?: string) => h.app.inject({ url, headers: etag ? { 'if-none-match': etag } : {} })

  const first = await poll('/v1/streams/s')
  const tag = first.headers.etag as string
  t.match(tag, /^"[A-Za-z0-9_-]{27}"$/, 'an entity tag')
  const same = await poll('/v1/streams/s', tag)
  t.equal(same.statusCode, 304)
  t.equal(same.body, '', 'no body')
  t.equal(same.headers.etag, tag)
  t.equal((await poll('/v1/streams/s', `W/${tag}`)).statusCode, 304, 'weak comparison')
  t.equal((await poll('/v1/streams/s', `"other", ${tag}`)).statusCode, 304, 'any of a list')
  t.equal((await poll('/v1/streams/s', '*')).statusCode, 304, '* matches what exists')
  t.equal((await poll('/v1/streams/s', '"other"')).statusCode, 200)
  await h.app.inject({ method: 'PUT', url: '/v1/streams/s', payload: { ...stream, keep: 3 } })
  const changed = await poll('/v1/streams/s', tag)
  t.equal(changed.statusCode, 200, 'a changed stream is sent again')
  t.not(changed.headers.etag, tag)

  const { id } = (await h.app.inject({ method: 'POST', url: '/v1/streams/s/builds', payload: {} })).json()
  const early = await poll(`/v1/builds/${id}`)
  const list = await poll('/v1/builds?stream=s')
  const done = await h.waitFor(id, ['failed'])
  t.equal(done.reason, 'config_unavailable')
  const after = await poll(`/v1/builds/${id}`, early.headers.etag as string)
  t.equal(after.statusCode, early.json().state === 'failed' ? 304 : 200, 'the build\'s state changed: sent again')
  const again = await poll(`/v1/builds/${id}`, after.headers.etag as string)
  t.equal(again.statusCode, 304, 'then 304 while it stays')
  // A finished build is answered from memory, without a promise: the same headers.
  t.equal(again.headers.etag, after.headers.etag, 'the 304 names the tag')
  t.ok(again.headers['x-request-id'], 'and the request id')
  t.equal(again.body, '', 'and has no body')
  t.equal((await poll('/v1/builds?stream=s', list.headers.etag as string)).statusCode, list.json().builds[0].state === 'failed' ? 304 : 200)
  t.equal((await poll('/v1/builds/nope-0000', '*')).statusCode, 404, 'errors carry no tag and are never 304')
})
