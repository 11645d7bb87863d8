import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { ensureInertImage, INERT_IMAGE, startApp } from '../helpers.js'

await ensureInertImage()

// DELETE /v1/streams/{stream}: refused while a build is queued or running;
// otherwise the stream and its directories go, and with purge its builds.

t.test('delete a stream, keep or purge its builds', async (t) => {
  const h = await startApp(t)
  const { app } = h
  const put = (name: string) => app.inject({ method: 'PUT', url: `/v1/streams/${name}`, payload: { config: { url: 'file:///nonexistent', ref: 'main' }, image: INERT_IMAGE } })
  t.equal((await put('keep')).statusCode, 201)
  t.equal((await put('gone')).statusCode, 201)
  const submit = async (name: string) => (await app.inject({ method: 'POST', url: `/v1/streams/${name}/builds`, payload: {} })).json().id as string
  const kept = await h.waitFor(await submit('keep'), ['failed'])
  const purged = await h.waitFor(await submit('gone'), ['failed'])
  const store = app.core.store
  // Not woken: the scheduler's next tick (a second away) may claim it, which keeps it busy all the same.
  const queued = await app.core.lifecycle.submit({ id: 'q1', stream: 'keep', request: { force: false, skipPrune: false }, createdAt: new Date().toISOString() })
  t.equal(queued.kind, 'created')

  const del = (url: string) => app.inject({ method: 'DELETE', url })
  const busy = await del('/v1/streams/keep')
  t.equal(busy.statusCode, 409)
  t.equal(busy.json().code, 'BLD_STREAM_BUSY')
  t.ok(await store.streams.getStream('keep'), 'a busy stream stays')
  await app.inject({ method: 'POST', url: '/v1/builds/q1/cancel' })
  await h.waitFor('q1', ['cancelled', 'failed'])

  const workdir = app.core.dataDir.workdir('keep')
  await mkdir(workdir, { recursive: true })
  await writeFile(join(workdir, 'x'), 'x')
  t.equal((await del('/v1/streams/keep')).statusCode, 204)
  t.notOk(await store.streams.getStream('keep'), 'the stream is gone')
  t.notOk(existsSync(join(app.core.dataDir.streams, 'keep')), 'with its workdir and mirror')
  t.equal((await app.inject({ url: `/v1/builds/${kept.id}` })).statusCode, 200, 'its builds stay without purge')
  t.equal((await del('/v1/streams/keep')).statusCode, 404, 'a second delete: 404')

  t.equal((await app.inject({ url: `/v1/builds/${purged.id}` })).statusCode, 200, 'seen once (kept in memory)')
  t.equal((await del('/v1/streams/gone?purge=true')).statusCode, 204)
  t.equal((await app.inject({ url: `/v1/builds/${purged.id}` })).statusCode, 404, 'purge deletes its builds')
  t.notOk(existsSync(app.core.dataDir.logs + `/${purged.id}.log`), 'and their logs')
  t.equal((await del('/v1/streams/gone?purge=maybe')).statusCode, 400)
})
