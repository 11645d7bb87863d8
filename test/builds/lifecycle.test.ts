import { join } from 'node:path'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import type { BuildEvent } from '../../src/builds/build-event.js'
import { BuildLifecycle } from '../../src/builds/lifecycle.js'
import { openDatabase } from '../../src/store/open-database.js'
import { tempDir } from '../helpers.js'

const request = { force: false, skipPrune: false }

async function setup (t: Test, infrastructureRetries = 0) {
  const store = await openDatabase({}, join(await tempDir(t), 'db.sqlite'))
  t.teardown(() => store.close())
  await store.streams.putStream({
    name: 's', config: { url: 'file:///x', ref: 'm' }, image: 'i', platforms: [], timeoutSeconds: 1, keep: 10,
    resources: {}, recipe: [], createdAt: '', updatedAt: ''
  })
  const lines: Array<{ level: number, msg: string }> = []
  const logger = pino({ level: 'info' }, { write: (s: string) => { lines.push(JSON.parse(s)) } })
  let clock = Date.parse('2026-01-01T00:00:00Z')
  const lifecycle = new BuildLifecycle({ store, logger, now: () => new Date(clock += 1000), lease: { owner: 'test', ms: 30_000 }, infrastructureRetries })
  const heard: BuildEvent[] = []
  lifecycle.subscribe((e) => heard.push(e))
  return { store, lifecycle, lines, heard }
}

t.test('a build\'s path, each move with its event, the rules with it', async (t) => {
  const { store, lifecycle, lines, heard } = await setup(t)
  await lifecycle.submit({ id: 'b', stream: 's', request, createdAt: '2026-01-01T00:00:00Z' })
  const running = await lifecycle.claimNext(1)
  t.equal(running?.phase, 'preparing', 'a started build is preparing')
  await lifecycle.record('b', { resultTokenHash: 'f'.repeat(64) })
  await lifecycle.phase('b', 'build')
  await lifecycle.requestCancel((await store.builds.getBuild('b'))!)
  t.equal(await lifecycle.requestCancel((await store.builds.getBuild('b'))!), undefined, 'a second cancel request changes nothing')
  const done = await lifecycle.finish(running!, { state: 'failed', reason: 'exit_code', message: 'm', exitCode: 1 })
  t.equal(done?.failedStep, 'build', 'a failed build names the step it failed in')
  t.equal(done?.phase, undefined, 'a finished build has no phase')
  t.notOk(await store.builds.resultTokenHash('b'), 'a final state forgets the result token')
  t.same(heard.map((e) => [e.seq, e.type, e.build.state]), [
    [1, 'build.queued', 'queued'], [2, 'build.started', 'running'], [3, 'build.phase', 'running'],
    [4, 'build.cancel_requested', 'running'], [5, 'build.finished', 'failed']])
  t.same(await store.events.eventsAfter(0, { limit: 10 }), heard, 'subscribers hear what the outbox holds')
  const finished = lines.find((l) => l.msg === 'build finished')
  t.match(finished, { buildId: 'b', stream: 's', state: 'failed', reason: 'exit_code', failedStep: 'build', queueWaitSeconds: 2, runSeconds: 5 })
})

t.test('illegal and late moves are refused', async (t) => {
  const { store, lifecycle, lines, heard } = await setup(t)
  await lifecycle.submit({ id: 'q', stream: 's', request, createdAt: '2026-01-01T00:00:00Z' })
  t.equal(await lifecycle.requeue('q'), undefined, 'a queued build is not running: nothing to requeue')
  t.equal(await lifecycle.phase('q', 'build'), undefined, 'a queued build has no step')
  const cancelled = await lifecycle.requestCancel((await store.builds.getBuild('q'))!)
  t.equal(cancelled?.state, 'cancelled', 'a queued build is cancelled at once')
  t.ok(cancelled?.cancelRequestedAt && cancelled.finishedAt)
  t.equal(await lifecycle.finish(cancelled!, { state: 'succeeded' }), undefined, 'a final state is final')
  t.same(heard.map((e) => e.type), ['build.queued', 'build.finished'])
  t.notOk(lines.some((l) => l.level >= 50), 'refusals of a lost race are not errors')
})

t.test('a move the table forbids is a programming error: logged at error, refused', async (t) => {
  const { store, lifecycle, lines, heard } = await setup(t)
  await lifecycle.submit({ id: 'b', stream: 's', request, createdAt: '2026-01-01T00:00:00Z' })
  const running = (await lifecycle.claimNext(1))!
  // What a type cast or a bad merge could do: there is no move from running to "started".
  t.equal(await lifecycle.finish(running, { state: 'started' as never }), undefined)
  t.equal((await store.builds.getBuild('b'))?.state, 'running', 'nothing was written')
  t.match(lines.find((l) => l.level === 50), { msg: 'illegal build state transition refused', from: 'running', to: 'started' })
  t.equal(heard.length, 2, 'and no event')
})

t.test('an infrastructure failure is queued again with its attempt recorded, once per retry allowed', async (t) => {
  const { store, lifecycle, heard } = await setup(t, 1)
  await lifecycle.submit({ id: 'b', stream: 's', request, createdAt: '2026-01-01T00:00:00Z' })
  const first = (await lifecycle.claimNext(1, { id: 'b', engine: 'e1', arch: 'x86_64', capacity: 1 }))!
  await lifecycle.record('b', { containerId: 'c1', resultTokenHash: 'f'.repeat(64) })
  await lifecycle.phase('b', 'build')
  const requeued = await lifecycle.finish(first, { state: 'failed', reason: 'infrastructure', message: 'the engine went away', exitCode: 143 })
  t.match(requeued, { state: 'queued', attempts: [{ engine: 'e1', arch: 'x86_64', state: 'failed', reason: 'infrastructure', failedStep: 'build' }] })
  for (const key of ['engine', 'arch', 'containerId', 'startedAt', 'phase', 'exitCode', 'reason', 'finishedAt'] as const) {
    t.equal(requeued?.[key], undefined, `the next attempt starts without the last one's ${key}`)
  }
  t.notOk(await store.builds.resultTokenHash('b'), 'nor its result token')
  t.notOk(lifecycle.leases.token('b'), 'nor its lease')

  const second = (await lifecycle.claimNext(1, { id: 'b', engine: 'e2', arch: 'x86_64', capacity: 1 }))!
  const failed = await lifecycle.finish(second, { state: 'failed', reason: 'infrastructure', message: 'again' })
  t.match(failed, { state: 'failed', reason: 'infrastructure', message: 'again' }, 'the retries are used up: it fails')
  t.same(failed?.attempts?.map((a) => [a.engine, a.state, a.reason]), [['e1', 'failed', 'infrastructure'], ['e2', 'failed', 'infrastructure']])
  t.same(heard.map((e) => e.type), ['build.queued', 'build.started', 'build.phase', 'build.requeued', 'build.started', 'build.finished'])
  t.equal(heard.find((e) => e.type === 'build.requeued')?.build.attempts?.length, 1, 'the event shows the attempt')
})

t.test('other failures, and a build whose cancel was requested, are not retried', async (t) => {
  const { store, lifecycle } = await setup(t, 3)
  await lifecycle.submit({ id: 'x', stream: 's', request, createdAt: '2026-01-01T00:00:00Z' })
  const x = (await lifecycle.claimNext(1))!
  t.match(await lifecycle.finish(x, { state: 'failed', reason: 'exit_code', exitCode: 1 }), { state: 'failed', attempts: [{ reason: 'exit_code' }] })
  await lifecycle.submit({ id: 'y', stream: 's', request, createdAt: '2026-01-01T00:00:00Z' })
  const y = (await lifecycle.claimNext(1))!
  await lifecycle.requestCancel((await store.builds.getBuild('y'))!)
  t.match(await lifecycle.finish(y, { state: 'failed', reason: 'infrastructure', message: 'm' }), { state: 'failed', reason: 'infrastructure' })
})
