import t from 'tap'
import { parseRange } from '../../src/http/download.js'

t.test('Range headers', async (t) => {
  t.same(parseRange(undefined, 100), undefined, 'none: the whole file')
  t.same(parseRange('bytes=0-9', 100), { start: 0, end: 9 })
  t.same(parseRange('bytes=90-', 100), { start: 90, end: 99 }, 'open-ended')
  t.same(parseRange('bytes=90-500', 100), { start: 90, end: 99 }, 'an end past the file is clamped')
  t.same(parseRange('bytes=-10', 100), { start: 90, end: 99 }, 'a suffix')
  t.same(parseRange('bytes=-500', 100), { start: 0, end: 99 }, 'a suffix longer than the file')
  t.equal(parseRange('bytes=100-', 100), 'unsatisfiable', 'starting at the end')
  t.equal(parseRange('bytes=-0', 100), 'unsatisfiable')
  t.equal(parseRange('bytes=0-0', 0), 'unsatisfiable', 'any range of an empty file')
  t.same(parseRange('bytes=0-1,5-6', 100), undefined, 'several ranges: the whole file')
  t.same(parseRange('items=0-1', 100), undefined, 'another unit: the whole file')
  t.same(parseRange('bytes=9-1', 100), undefined, 'an inverted range is ignored')
  t.same(parseRange('bytes=-', 100), undefined)
  t.same(parseRange('bytes=99999999999999999999-', 100), 'unsatisfiable')
})
