import { join } from 'node:path'
import t from 'tap'
import { SqliteStore } from '../../src/store/sqlite-store.js'
import { tempDir } from '../helpers.js'

const stream = (name: string) => ({
  name, config: { url: 'file:///x', ref: 'main' }, image: 'i', platforms: ['qemu'], timeoutSeconds: 60, keep: 10,
  resources: {}, recipe: [['build']], createdAt: 'c', updatedAt: 'u'
})
const request = { force: false, skipPrune: false }
const queued = { type: 'build.queued', time: 't' } as const
const started = { type: 'build.started', time: 't' } as const
const finished = { type: 'build.finished', time: 't' } as const
const claim = async (store: SqliteStore, max: number) => (await store.claimNext(max, 't', 'preparing', started))?.build

t.test('claims: oldest first, one per stream, bounded in all', async (t) => {
  const store = new SqliteStore(join(await tempDir(t), 'db.sqlite'))
  t.teardown(() => store.close())
  await store.putStream(stream('a'))
  await store.putStream(stream('b'))
  for (const [id, s] of [['a1', 'a'], ['a2', 'a'], ['b1', 'b'], ['b2', 'b']]) {
    await store.insertBuild({ id: id!, stream: s!, request, createdAt: 'now' }, undefined, queued)
  }
  t.equal((await claim(store, 3))?.id, 'a1')
  t.equal((await claim(store, 3))?.id, 'b1', 'a2 waits: stream a is busy')
  t.equal(await claim(store, 3), undefined, 'nothing else may start')
  const state = async (id: string) => store.queueState((await store.getBuild(id))!)
  t.same(await state('a2'), { streamBusy: true, position: 1 }, 'a2: first in its busy stream\'s queue')
  t.same(await state('b2'), { streamBusy: true, position: 1 })
  await store.transition('a1', ['running'], 'succeeded', {}, finished)
  t.equal((await claim(store, 1)), undefined, 'the global limit holds (b1 runs)')
  t.equal((await claim(store, 2))?.id, 'a2')
})

t.test('the queue as it will start: free streams first, busy ones in their own line', async (t) => {
  const store = new SqliteStore(join(await tempDir(t), 'db.sqlite'))
  t.teardown(() => store.close())
  for (const s of ['a', 'b', 'c', 'd']) await store.putStream(stream(s))
  for (const [id, s] of [['a1', 'a'], ['a2', 'a'], ['a3', 'a'], ['b1', 'b'], ['c1', 'c'], ['b2', 'b'], ['d1', 'd']]) {
    await store.insertBuild({ id: id!, stream: s!, request, createdAt: 'now' }, undefined, queued)
  }
  t.equal((await claim(store, 1))?.id, 'a1', 'one slot: a1 runs')
  const state = async (id: string) => store.queueState((await store.getBuild(id))!)
  t.same(await state('b1'), { streamBusy: false, position: 3 }, 'b1: a2 and a3, older, go first once a1 is done')
  t.same(await state('c1'), { streamBusy: false, position: 4 })
  t.same(await state('d1'), { streamBusy: false, position: 6 })
  t.same(await state('a2'), { streamBusy: true, position: 1 }, 'a2: first in line behind a1')
  t.same(await state('a3'), { streamBusy: true, position: 2 }, 'a3: behind a2 in stream a')
  t.same(await state('b2'), { streamBusy: true, position: 2 }, 'b2: behind b1')
  // What the positions said is what the claims do, one slot at a time.
  const order = []
  for (let running = 'a1'; ;) {
    await store.transition(running, ['running'], 'succeeded', {}, finished)
    const next = await claim(store, 1)
    if (!next) break
    order.push(next.id)
    running = next.id
  }
  t.same(order, ['a2', 'a3', 'b1', 'c1', 'b2', 'd1'], 'one slot: oldest first, as the positions said')

})

t.test('transitions are conditional: the first terminal writer wins', async (t) => {
  const store = new SqliteStore(join(await tempDir(t), 'db.sqlite'))
  t.teardown(() => store.close())
  await store.putStream(stream('a'))
  await store.insertBuild({ id: 'x', stream: 'a', request, createdAt: 'now' }, undefined, queued)
  t.equal(await store.transition('x', ['running'], 'failed', {}, finished), undefined, 'not running: no change')
  t.equal((await store.transition('x', ['queued'], 'cancelled', {}, finished))?.build.state, 'cancelled')
  t.equal(await store.transition('x', ['queued', 'running'], 'succeeded', {}, finished), undefined)
  t.equal((await store.getBuild('x'))?.state, 'cancelled')
})

t.test('idempotency keys are per client and tied to the body', async (t) => {
  const path = join(await tempDir(t), 'db.sqlite')
  const store = new SqliteStore(path)
  await store.putStream(stream('a'))
  const claim = { scope: 'client-1', key: 'k', fingerprint: 'f1' }
  const first = await store.insertBuild({ id: 'i1', stream: 'a', request, createdAt: 'now' }, claim, queued)
  t.equal(first.kind, 'created')
  t.equal((await store.insertBuild({ id: 'i2', stream: 'a', request, createdAt: 'now' }, claim, queued)).kind, 'replayed')
  t.equal((await store.insertBuild({ id: 'i3', stream: 'a', request, createdAt: 'now' }, { ...claim, fingerprint: 'f2' }, queued)).kind, 'mismatch')
  t.equal((await store.insertBuild({ id: 'i4', stream: 'a', request, createdAt: 'now' }, { ...claim, scope: 'client-2' }, queued)).kind, 'created')
  await store.close()
  const reopened = new SqliteStore(path)
  t.teardown(() => reopened.close())
  t.same((await reopened.buildsInState(['queued'])).map((b) => b.id), ['i1', 'i4'], 'queued builds survive a reopen')
})

t.test('the outbox: one event per change, in commit order, filtered, kept across a reopen', async (t) => {
  const path = join(await tempDir(t), 'db.sqlite')
  const store = new SqliteStore(path)
  for (const s of ['a', 'b']) await store.putStream(stream(s))
  const created = await store.insertBuild({ id: 'x', stream: 'a', request, createdAt: 'now' }, undefined, queued)
  t.equal(created.kind === 'created' && created.event.seq, 1, 'the queued event comes with the build')
  await store.insertBuild({ id: 'y', stream: 'b', request, createdAt: 'now' }, undefined, queued)
  t.equal(await store.transition('x', ['running'], 'failed', {}, finished), undefined)
  const change = await store.transition('x', ['queued'], 'cancelled', { finishedAt: 'f' }, finished)
  t.same(change?.event, { seq: 3, type: 'build.finished', buildId: 'x', stream: 'a', time: 't', build: { ...change!.event.build } })
  t.equal(change?.event.build.state, 'cancelled', 'the event has the build as it is after the change')
  t.notOk('seq' in change!.event.build, 'in the API\'s shape: no row number')
  t.same((await store.eventsAfter(0, { limit: 10 })).map((e) => [e.seq, e.type, e.buildId]),
    [[1, 'build.queued', 'x'], [2, 'build.queued', 'y'], [3, 'build.finished', 'x']], 'a refused change appends nothing')
  t.same((await store.eventsAfter(1, { limit: 1 })).map((e) => e.seq), [2], 'after a seq, bounded')
  t.same((await store.eventsAfter(0, { limit: 10, stream: 'a' })).map((e) => e.seq), [1, 3])
  t.same((await store.eventsAfter(0, { limit: 10, build: 'y' })).map((e) => e.seq), [2])
  await store.close()
  const reopened = new SqliteStore(path)
  t.teardown(() => reopened.close())
  const again = await reopened.insertBuild({ id: 'z', stream: 'a', request, createdAt: 'now' }, undefined, queued)
  t.equal(again.kind === 'created' && again.event.seq, 4, 'numbering goes on after a reopen')
})
