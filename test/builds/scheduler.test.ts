import t, { type Test } from 'tap'
import { Scheduler } from '../../src/builds/scheduler.js'
import { EngineHealth } from '../../src/engines/engine-health.js'
import { silentLogger } from '../helpers.js'
import { runnerHarness } from './runner-harness.js'

// Placement through the scheduler, with the real store, lifecycle and runner
// on engines in memory: builds of several streams spread over two x86_64
// engines within their capacity, a stream's next build goes home, a draining
// engine takes none, and a build whose arch no engine serves waits. Jobs run
// until cancelled. The decision alone is in test/engines/placement.test.ts.

async function setup (t: Test, homeEngineWaitMs = 60_000) {
  const h = await runnerHarness(t, { engines: 2, arches: ['x86_64', 'x86_64'] })
  const [a, b] = h.fakes as [typeof h.fake, typeof h.fake]
  const health = new EngineHealth({ registry: h.engines, timeoutMs: 1000, maxAgeMs: 0, now: () => new Date() })
  const scheduler = new Scheduler({
    store: h.store, lifecycle: h.lifecycle, runner: h.runner, maxConcurrent: 10, logger: silentLogger,
    engines: h.engines, health, homeEngineWaitMs, now: () => new Date()
  })
  scheduler.start(50)
  t.teardown(() => scheduler.stop())
  let n = 0
  const submit = async (stream: string) => {
    const id = `x${++n}`
    await h.lifecycle.submit({ id, stream, request: { force: false, skipPrune: false }, createdAt: new Date().toISOString() })
    return id
  }
  const engineOf = async (id: string) => {
    await h.until(`${id} to start`, async () => (await h.build(id)).state === 'running' && h.runner.isActive(id))
    return (await h.build(id)).engine
  }
  const end = async (id: string) => {
    await h.lifecycle.requestCancel(await h.build(id))
    await h.until(`${id} to end`, async () => (await h.build(id)).state === 'cancelled')
  }
  const waits = async (id: string, why: string) => {
    await h.until(`${id} to wait for ${why}`, async () => scheduler.waitingFor(id) === why)
    t.equal((await h.build(id)).state, 'queued', `${id} waits: ${why}`)
  }
  return { h, a, b, scheduler, submit, engineOf, end, waits }
}

t.test('spread within capacity, then home affinity, then drain', async (t) => {
  const { h, a, b, submit, engineOf, end, waits } = await setup(t)
  const [s1, t1, u1] = [await submit('s'), await submit('t'), await submit('u')]
  t.equal(await engineOf(s1), a.name, 'the oldest build on the first idle engine')
  t.equal(await engineOf(t1), b.name, 'the next on the other: each has room for one')
  await waits(u1, 'slot')
  await end(s1)
  t.equal(await engineOf(u1), a.name, 'u takes the room s left')

  await end(t1)
  await end(u1)
  const s2 = await submit('s')
  t.equal(await engineOf(s2), a.name, 's goes home to a')
  const t2 = await submit('t')
  t.equal(await engineOf(t2), b.name, 't goes home to b')
  await end(s2)
  await end(t2)

  h.engines.setDraining(a.name, true)
  const s3 = await submit('s')
  t.equal(await engineOf(s3), b.name, 'a drains: s leaves its home for b at once')
  const u2 = await submit('u')
  await waits(u2, 'slot')
  h.engines.setDraining(a.name, false)
  t.equal(await engineOf(u2), a.name, 'undrained, a takes builds again (u\'s home: t would wait for b, its own)')
})

t.test('capacity of two on one engine; a full home is waited for, then left', async (t) => {
  const { h, a, b, submit, engineOf, end, waits } = await setup(t, 800)
  h.engines.put({ executor: a, capacity: 2, draining: false })
  h.engines.put({ executor: b, capacity: 1, draining: false })
  const s1 = await submit('s')
  t.equal(await engineOf(s1), a.name)
  await end(s1)
  const [t1, u1] = [await submit('t'), await submit('u')]
  t.equal(await engineOf(t1), a.name, 'a has a share of 0 in use, b too: by name')
  t.equal(await engineOf(u1), b.name, 'then the less loaded')
  const s2 = await submit('s')
  t.equal(await engineOf(s2), a.name, 'a\'s second slot: s\'s home has room')
  await end(u1)
  await end(s2)
  await end(t1)
  h.engines.put({ executor: a, capacity: 1, draining: false })
  const t2 = await submit('t')
  t.equal(await engineOf(t2), a.name)
  const started = Date.now()
  const s3 = await submit('s')
  await waits(s3, 'slot')
  t.equal(await engineOf(s3), b.name, 'after homeEngineWaitMs, another engine of the arch')
  t.ok(Date.now() - started >= 700, `not before the wait (${Date.now() - started} ms)`)
})

t.test('a build whose arch no engine serves waits with no_engine_for_arch; an engine that goes down makes it engine_unavailable', async (t) => {
  const { h, a, b, submit, engineOf, waits } = await setup(t)
  const u = (await h.store.streams.getStream('u'))!
  await h.store.streams.putStream({ ...u, arches: ['aarch64'] })
  const u1 = await submit('u')
  await waits(u1, 'no_engine_for_arch')
  a.crash()
  b.crash()
  const s1 = await submit('s')
  await waits(s1, 'engine_unavailable')
  b.restore()
  t.equal(await engineOf(s1), b.name, 'the engine that is back takes it')
})
