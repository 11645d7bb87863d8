import t from 'tap'
import { buildsToPrune } from '../../src/artifacts/retention.js'
import type { BuildsJson } from '../../src/cosa/builds-json.js'

const doc = (...ids: string[]): BuildsJson =>
  ({ 'schema-version': '1.0.0', timestamp: 't', builds: ids.map((id) => ({ id, arches: ['x86_64'] })) })

t.test('retention', async (t) => {
  t.same(buildsToPrune(doc('d', 'c', 'b', 'a'), 2, new Set()), ['b', 'a'], 'keep the newest two')
  t.same(buildsToPrune(doc('d', 'c', 'b', 'a'), 2, new Set(['a'])), ['b'], 'a pinned build stays and does not count')
  t.same(buildsToPrune(doc('d', 'c', 'b', 'a'), 2, new Set(['d'])), ['a'], 'a pinned latest does not count either')
  t.same(buildsToPrune(doc('d', 'c'), 0, new Set()), ['c'], 'the latest is never pruned')
  t.same(buildsToPrune(doc('c', 'b', 'a'), 10, new Set()), [], 'fewer than keep')
  t.same(buildsToPrune(doc(), 1, new Set()), [])
})

t.test('a tagged build is never pruned and does not count, as cosa prune keeps it', async (t) => {
  const tagged = (target: string, ...ids: string[]) => ({ ...doc(...ids), tags: [{ name: 'golden', target, created: 't' }] })
  t.same(buildsToPrune(tagged('b', 'e', 'd', 'c', 'b', 'a'), 2, new Set()), ['c', 'a'], 'e and d are the two kept; tagged b stays')
  t.same(buildsToPrune(tagged('a', 'e', 'd', 'c', 'b', 'a'), 3, new Set(['c'])), [], 'tags and pins together')
  t.same(buildsToPrune({ ...doc('c', 'b', 'a'), tags: 'not a list' }, 1, new Set()), ['b', 'a'], 'a malformed tags list protects nothing')
})
