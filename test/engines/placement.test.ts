import t from 'tap'
import { place, type PlacementEngine } from '../../src/engines/placement.js'

// The decision alone, over engines described by hand; test/builds/scheduler.test.ts
// has it with the store and the scheduler, on engines in memory.

const engine = (name: string, over: Partial<PlacementEngine> = {}): PlacementEngine =>
  ({ name, arch: 'x86_64', capacity: 1, running: 0, draining: false, reachable: true, ...over })
const WAIT = 60_000
const where = (d: ReturnType<typeof place>) => 'engine' in d ? d.engine.name : d.waiting

t.test('home affinity: the home engine while it has room, even when another is idle', async (t) => {
  const engines = [engine('a', { capacity: 2, running: 1 }), engine('b')]
  t.same(place({ arch: 'x86_64', home: 'a', waitedMs: 0 }, engines, WAIT), { engine: engines[0], home: true })
  t.equal(where(place({ arch: 'x86_64', home: undefined, waitedMs: 0 }, engines, WAIT)), 'b', 'no home: the least loaded')
})

t.test('a full home is waited for, then left for another engine of the arch', async (t) => {
  const engines = [engine('a', { running: 1 }), engine('b')]
  t.equal(where(place({ arch: 'x86_64', home: 'a', waitedMs: WAIT - 1 }, engines, WAIT)), 'slot')
  t.same(place({ arch: 'x86_64', home: 'a', waitedMs: WAIT }, engines, WAIT), { engine: engines[1], home: false })
})

t.test('a home that is down or draining is left at once', async (t) => {
  t.equal(where(place({ arch: 'x86_64', home: 'a', waitedMs: 0 }, [engine('a', { reachable: false }), engine('b')], WAIT)), 'b')
  t.equal(where(place({ arch: 'x86_64', home: 'a', waitedMs: 0 }, [engine('a', { draining: true }), engine('b')], WAIT)), 'b')
})

t.test('capacity: every engine of the arch full is a wait for a slot', async (t) => {
  t.equal(where(place({ arch: 'x86_64', waitedMs: WAIT }, [engine('a', { running: 1 }), engine('b', { capacity: 2, running: 2 })], WAIT)), 'slot')
  t.equal(where(place({ arch: 'x86_64', waitedMs: 0 }, [engine('a', { capacity: 4, running: 3 }), engine('b', { capacity: 2, running: 1 })], WAIT)), 'b',
    'the smaller share of capacity in use')
})

t.test('arch: only engines of it; none at all, or all draining, is no_engine_for_arch; one down is engine_unavailable', async (t) => {
  const arm = engine('arm', { arch: 'aarch64' })
  t.equal(where(place({ arch: 'aarch64', waitedMs: 0 }, [engine('a'), arm], WAIT)), 'arm')
  t.equal(where(place({ arch: 's390x', waitedMs: 0 }, [engine('a'), arm], WAIT)), 'no_engine_for_arch')
  t.equal(where(place({ arch: 'aarch64', waitedMs: 0 }, [engine('a'), { ...arm, draining: true }], WAIT)), 'no_engine_for_arch')
  t.equal(where(place({ arch: 'aarch64', waitedMs: 0 }, [engine('a'), { ...arm, reachable: false }], WAIT)), 'engine_unavailable')
  t.equal(where(place({ arch: 'aarch64', waitedMs: 0 }, [engine('a'), engine('new', { arch: undefined, reachable: false })], WAIT)),
    'engine_unavailable', 'an engine never heard from may be of the arch')
  t.equal(where(place({ arch: undefined, waitedMs: 0 }, [engine('a', { reachable: false })], WAIT)), 'engine_unavailable',
    'the default engine\'s arch is not known yet')
})

t.test('a retried build avoids the engines that failed it while another can take it', async (t) => {
  const engines = [engine('a'), engine('b', { capacity: 2, running: 1 })]
  t.equal(where(place({ arch: 'x86_64', home: 'a', waitedMs: 0, avoid: ['a'] }, engines, WAIT)), 'b',
    'its home failed it: another engine at once, though more loaded')
  t.equal(where(place({ arch: 'x86_64', waitedMs: 0, avoid: ['b'] }, [engine('a', { capacity: 2, running: 1 }), engine('b')], WAIT)), 'a',
    'without a home: the engines that did not fail it first')
  t.same(place({ arch: 'x86_64', home: 'a', waitedMs: 0, avoid: ['a'] }, [engine('a'), engine('b', { running: 1 })], WAIT),
    { engine: engine('a'), home: true }, 'only the engine that failed it has room: it runs there again rather than wait')
  t.equal(where(place({ arch: 'x86_64', home: 'b', waitedMs: 0, avoid: ['a'] }, [engine('a'), engine('b', { running: 1 })], WAIT)), 'slot',
    'a home that did not fail it is waited for as ever')
})
