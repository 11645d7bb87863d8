import t from 'tap'
import type { BuildView } from '../../src/builds/build-service.js'
import { FinishedBuilds } from '../../src/builds/finished-builds.js'

const view = (id: string, state: BuildView['state'], stream = 's') =>
  ({ id, stream, state, seq: 1, request: { force: false, skipPrune: false }, createdAt: '2026-11-30T00:00:00.000Z' }) as BuildView

t.test('keeps finished builds only, the same object each time', async (t) => {
  const cache = new FinishedBuilds(10)
  const done = view('a', 'succeeded')
  t.equal(cache.remember(done), done)
  t.equal(cache.get('a'), done, 'the very object')
  for (const state of ['queued', 'running'] as const) {
    cache.remember(view(state, state))
    t.equal(cache.get(state), undefined, `a ${state} build is not kept`)
  }
})

t.test('bounded, first kept first out', async (t) => {
  const cache = new FinishedBuilds(2)
  cache.remember(view('a', 'failed'))
  cache.remember(view('b', 'failed'))
  cache.remember(view('c', 'failed'))
  t.equal(cache.get('a'), undefined, 'the oldest went')
  t.ok(cache.get('b'))
  t.ok(cache.get('c'))
})

t.test('forgetting a stream drops its builds alone', async (t) => {
  const cache = new FinishedBuilds()
  cache.remember(view('a', 'succeeded', 'one'))
  cache.remember(view('b', 'unchanged', 'two'))
  cache.forgetStream('one')
  t.equal(cache.get('a'), undefined)
  t.ok(cache.get('b'))
})
