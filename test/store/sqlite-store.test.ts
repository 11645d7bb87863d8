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
  const state = async (id: string) => store.queueState((await store.getBuild(id))!)
  t.same(await state('a2'), { streamBusy: true, position: 1 }, 'a2: first in its busy stream\'s queue')
  t.same(await state('b2'), { streamBusy: true, position: 1 })
  await store.transition('a1', ['running'], 'succeeded')
  t.equal((await store.claimNext(1, 't')), undefined, 'the global limit holds (b1 runs)')
  t.equal((await store.claimNext(2, 't'))?.id, 'a2')
})

t.test('the queue as it will start: free streams first, busy ones in their own line', async (t) => {
  const store = new SqliteStore(join(await tempDir(t), 'db.sqlite'))
  t.teardown(() => store.close())
  for (const s of ['a', 'b', 'c', 'd']) await store.putStream(stream(s))
  for (const [id, s] of [['a1', 'a'], ['a2', 'a'], ['a3', 'a'], ['b1', 'b'], ['c1', 'c'], ['b2', 'b'], ['d1', 'd']]) {
    await store.insertBuild({ id: id!, stream: s!, request, createdAt: 'now' })
  }
  t.equal((await store.claimNext(1, 't'))?.id, 'a1', 'one slot: a1 runs')
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
    await store.transition(running, ['running'], 'succeeded')
    const next = await store.claimNext(1, 't')
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
