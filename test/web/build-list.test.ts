import t from 'tap'
import { merge } from '../../web/build-list.js'
import type { Build } from '../../web/types.js'

const build = (id: string, second: number, state: Build['state'] = 'queued'): Build => ({
  id, stream: 's', state, request: { force: false, skipPrune: false }, createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString()
})
const ids = (list: Build[]) => list.map((b) => b.id)

t.test('a known build is replaced in place', async (t) => {
  const list = [build('c', 3), build('b', 2), build('a', 1)]
  const next = merge(list, build('b', 2, 'running'), true)
  t.same(ids(next), ['c', 'b', 'a'])
  t.equal(next[1]!.state, 'running')
})

t.test('a new build goes where its creation time puts it', async (t) => {
  t.same(ids(merge([build('b', 2)], build('c', 3), false)), ['c', 'b'])
  t.same(ids(merge([build('c', 3), build('a', 1)], build('b', 2), true)), ['c', 'b', 'a'])
  t.same(ids(merge([], build('a', 1), false)), ['a'])
})

t.test('one older than all shown belongs to an older page, if there is one', async (t) => {
  t.same(ids(merge([build('c', 3)], build('a', 1), true)), ['c'])
  // Two builds reported in one poll, the newer first: both are shown.
  t.same(ids(merge([build('c', 3)], build('a', 1), false)), ['c', 'a'])
})
