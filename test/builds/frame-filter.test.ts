import t from 'tap'
import { FrameFilter } from '../../src/builds/frame-filter.js'
import type { LogFrame } from '../../src/executor/executor.js'

// The rules that keep a build log exact while every snapshot of the engine's
// log repeats some of the last one.

const at = (s: number, ns = 0) => `2026-01-01T00:00:${String(s).padStart(2, '0')}.${String(ns).padStart(9, '0')}Z`
const out = (ts: string, text: string): LogFrame => ({ stream: 'stdout', ts, data: Buffer.from(text) })
const err = (ts: string, text: string): LogFrame => ({ stream: 'stderr', ts, data: Buffer.from(text) })

/** Reads one snapshot; returns the lines kept. */
function snapshot (filter: FrameFilter, frames: LogFrame[]) {
  filter.begin()
  const lines: string[] = []
  for (const f of frames) {
    if (!filter.isNew(f)) continue
    const line = filter.keep(f)
    if (line) lines.push(line.toString())
  }
  return lines
}

t.test('a snapshot that repeats the last one adds only what is new', async (t) => {
  const filter = new FrameFilter()
  const first = [out(at(1), 'a\n'), out(at(2), 'b\n')]
  t.same(snapshot(filter, first), ['a\n', 'b\n'])
  snapshot(filter, [err(at(2, 5), 'e\n')])
  t.equal(filter.since(), '1767225602.000000000', 'the next snapshot starts at the older stream\'s last line')
  t.same(snapshot(filter, [...first, out(at(3), 'c\n')]), ['c\n'])
  t.same(snapshot(filter, [out(at(3), 'c\n')]), [], 'nothing new')
  t.same(filter.committed(), { stdout: { ts: at(3), n: 1 }, stderr: { ts: at(2, 5), n: 1 } })
})

t.test('frames that share a timestamp are told apart by count', async (t) => {
  const filter = new FrameFilter()
  // The pieces of a long line share their timestamp; so can lines of a coarse clock.
  t.same(snapshot(filter, [out(at(1), 'one\n'), out(at(1), 'two\n')]), ['one\n', 'two\n'])
  t.same(snapshot(filter, [out(at(1), 'one\n'), out(at(1), 'two\n'), out(at(1), 'three\n')]), ['three\n'])
  t.same(filter.committed(), { stdout: { ts: at(1), n: 3 } })
})

t.test('a long line arrives in pieces and is written once it is whole', async (t) => {
  const filter = new FrameFilter()
  t.same(snapshot(filter, [out(at(1), 'aaa'), out(at(1), 'bbb')]), [], 'no line yet')
  t.same(filter.committed(), {}, 'a checkpoint does not promise half a line')
  t.same(snapshot(filter, [out(at(1), 'aaa'), out(at(1), 'bbb'), out(at(1), 'ccc\n')]), ['aaabbbccc\n'])
  t.same(filter.committed(), { stdout: { ts: at(1), n: 3 } })
})

t.test('stdout and stderr are judged apart: interleaving out of timestamp order is not a repeat', async (t) => {
  const filter = new FrameFilter()
  // The engine wrote stderr's line after stdout's, though it was stamped first.
  t.same(snapshot(filter, [out(at(2), 'out\n'), err(at(1, 500), 'err\n')]), ['out\n', 'err\n'])
  t.same(snapshot(filter, [out(at(2), 'out\n'), err(at(1, 500), 'err\n'), err(at(2, 1), 'err2\n')]), ['err2\n'])
})

t.test('a snapshot starts at the older stream\'s last line: the engine may write it late', async (t) => {
  const filter = new FrameFilter({ stderr: { ts: at(1), n: 1 }, stdout: { ts: at(50, 500_000_000), n: 1 } })
  t.equal(filter.since(), '1767225601.000000000')
  t.equal(new FrameFilter({ stdout: { ts: at(50), n: 1 } }).since(), undefined, 'from the start while a stream has printed nothing')
  t.equal(new FrameFilter().since(), undefined)
})

t.test('a snapshot that no longer reaches the newest line kept is not covered', async (t) => {
  const filter = new FrameFilter()
  snapshot(filter, [out(at(1), 'a\n'), out(at(2), 'b\n')])
  filter.begin()
  t.equal(filter.anchor, at(2))
  t.notOk(filter.covered)
  t.ok(filter.isNew(out(at(5), 'e\n')), 'a line after the gap is new')
  t.notOk(filter.covered, 'but the snapshot did not reach back: what lay between is gone')
  filter.cover()
  t.ok(filter.covered)
  filter.begin()
  t.notOk(filter.isNew(out(at(2), 'b\n')))
  t.ok(filter.covered, 'the newest line kept is in the snapshot')
})

t.test('a line cut by a loss is written as it is', async (t) => {
  const filter = new FrameFilter()
  snapshot(filter, [out(at(1), 'half')])
  t.equal(filter.flush('stdout')?.toString(), 'half')
  t.equal(filter.flush('stdout'), undefined)
  t.equal(filter.flush('stderr'), undefined)
})

t.test('an endless line is cut at 1 MiB', async (t) => {
  const filter = new FrameFilter()
  const piece = 'x'.repeat(16 * 1024)
  const lines = snapshot(filter, Array.from({ length: 65 }, (_, i) => out(at(1), piece + (i === 64 ? '\n' : ''))))
  t.equal(lines.length, 2)
  t.equal(lines[0]!.length, 1024 * 1024)
})
