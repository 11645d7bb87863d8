import t from 'tap'
import type { Build, BuildEvent } from '../../web/types.js'
import { timeline } from '../../web/timeline.js'

// A build page's phase timeline from the build's events (the page itself is
// tested in a browser: test/http/dashboard.test.ts).

const at = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString()
let seq = 0
const event = (type: BuildEvent['type'], s: number, over: Partial<Build> = {}): BuildEvent => ({
  seq: ++seq,
  type,
  buildId: 'b',
  stream: 's',
  time: at(s),
  build: { id: 'b', stream: 's', state: 'running', request: { force: false, skipPrune: false }, createdAt: at(0), ...over }
})

t.test('phases run from one event to the next; the last stays open until the end', async (t) => {
  const running = [event('build.queued', 0, { state: 'queued' }), event('build.started', 2, { phase: 'preparing' }),
    event('build.phase', 5, { phase: 'init' }), event('build.phase', 9, { phase: 'build' })]
  t.same(timeline(running), [
    { phase: 'preparing', start: at(2), end: at(5), failed: false },
    { phase: 'init', start: at(5), end: at(9), failed: false },
    { phase: 'build', start: at(9), failed: false }
  ])
  const done = timeline([...running, event('build.finished', 20, { state: 'failed', phase: 'build', failedStep: 'build' })].reverse())
  t.same(done.at(-1), { phase: 'build', start: at(9), end: at(20), failed: true }, 'in seq order whatever the arrival; the failed step marked')
  t.equal(done.filter((s) => s.failed).length, 1)
})

t.test('a requeued build starts its timeline again; a queued cancel has none', async (t) => {
  t.same(timeline([event('build.started', 1, { phase: 'preparing' }), event('build.requeued', 3, { state: 'queued' }),
    event('build.started', 4, { phase: 'preparing' })]), [{ phase: 'preparing', start: at(4), failed: false }])
  t.same(timeline([event('build.queued', 0, { state: 'queued' }), event('build.finished', 1, { state: 'cancelled' })]), [])
})
