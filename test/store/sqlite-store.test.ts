import { join } from 'node:path'
import t from 'tap'
import { SqliteStore } from '../../src/store/sqlite-store.js'
import { tempDir } from '../helpers.js'

const stream = (name: string) => ({
  name, config: { url: 'file:///x', ref: 'main' }, image: 'i', platforms: ['qemu'], timeoutSeconds: 60, keep: 10,
  resources: {}, recipe: [['build']], createdAt: 'c', updatedAt: 'u'
})
const request = { force: false, skipPrune: false }

t.test('claims: oldest first, one per stream, bounded in all', async (t) => {
  const store = new SqliteStore(join(await tempDir(t), 'db.sqlite'))
  t.teardown(() => store.close())
  await store.putStream(stream('a'))
  await store.putStream(stream('b'))
  for (const [id, s] of [['a1', 'a'], ['a2', 'a'], ['b1', 'b'], ['b2', 'b']]) {
    await store.insertBuild({ id: id!, stream: s!, request, createdAt: 'now' })
  }
  t.equal((await store.claimNext(3, 't'))?.id, 'a1')
  t.equal((await store.claimNext(3, 't'))?.id, 'b1', 'a2 waits: stream a is busy')
  t.equal(await store.claimNext(3, 't'), undefined, 'nothing else may start')
  t.equal(await store.queuePosition((await store.getBuild('b2'))!), 2)
  await store.transition('a1', ['running'], 'succeeded')
  t.equal((await store.claimNext(1, 't')), undefined, 'the global limit holds (b1 runs)')
  t.equal((await store.claimNext(2, 't'))?.id, 'a2')
})

t.test('transitions are conditional: the first terminal writer wins', async (t) => {
  const store = new SqliteStore(join(await tempDir(t), 'db.sqlite'))
  t.teardown(() => store.close())
  await store.putStream(stream('a'))
  await store.insertBuild({ id: 'x', stream: 'a', request, createdAt: 'now' })
  t.equal(await store.transition('x', ['running'], 'failed'), undefined, 'not running: no change')
  t.equal((await store.transition('x', ['queued'], 'cancelled'))?.state, 'cancelled')
  t.equal(await store.transition('x', ['queued', 'running'], 'succeeded'), undefined)
  t.equal((await store.getBuild('x'))?.state, 'cancelled')
})

t.test('idempotency keys are per client and tied to the body', async (t) => {
  const path = join(await tempDir(t), 'db.sqlite')
  const store = new SqliteStore(path)
  await store.putStream(stream('a'))
  const claim = { scope: 'client-1', key: 'k', fingerprint: 'f1' }
  const first = await store.insertBuild({ id: 'i1', stream: 'a', request, createdAt: 'now' }, claim)
  t.equal(first.kind, 'created')
  t.equal((await store.insertBuild({ id: 'i2', stream: 'a', request, createdAt: 'now' }, claim)).kind, 'replayed')
  t.equal((await store.insertBuild({ id: 'i3', stream: 'a', request, createdAt: 'now' }, { ...claim, fingerprint: 'f2' })).kind, 'mismatch')
  t.equal((await store.insertBuild({ id: 'i4', stream: 'a', request, createdAt: 'now' }, { ...claim, scope: 'client-2' })).kind, 'created')
  await store.close()
  const reopened = new SqliteStore(path)
  t.teardown(() => reopened.close())
  t.same((await reopened.buildsInState(['queued'])).map((b) => b.id), ['i1', 'i4'], 'queued builds survive a reopen')
})
