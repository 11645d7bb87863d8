import t from 'tap'
import { isTerminal } from '../../src/builds/build-state.js'
import { jobOf, type FakeExecutor, type Program } from '../executor/fake-executor.js'
import { runnerHarness } from './runner-harness.js'

// The reconciler on engines in memory: what a restarted service finds (a
// running build with a running, exited or missing job; a job without a live
// build) and what it does about each, engine by engine. The same on the real
// engine: crash-recovery.test.ts.

type Harness = Awaited<ReturnType<typeof runnerHarness>>

/** A running build with a job on `engine` that no runner supervises, as after a crash. */
async function abandoned (h: Harness, engine: FakeExecutor, program: Program, stream = 's', record = { engine: true }) {
  const build = await h.claim(stream)
  engine.program = program
  const jobId = await engine.create(jobOf(build.id))
  await engine.start(jobId)
  await h.lifecycle.record(build.id, { containerId: jobId, ...(record.engine ? { engine: engine.name, arch: 'x86_64' } : {}) })
  // As after a crash: no process holds the build's lease any more.
  h.lifecycle.leases.forget(build.id)
  return { build, jobId }
}

const ended = (h: Harness, id: string) => h.until(`build ${id} to end`, async () => isTerminal((await h.build(id)).state))

t.test('a running job is adopted and followed to its end; an exited one is decided', async (t) => {
  const h = await runnerHarness(t)
  let exit!: () => void
  const later = new Promise<void>((resolve) => { exit = resolve })
  const running = await abandoned(h, h.fake, async (run) => { run.print('before the crash'); await later; return { exitCode: 3 } })
  await h.reconciler.reconcile()
  t.ok(h.runner.isActive(running.build.id), 'the build is supervised again')
  exit()
  await ended(h, running.build.id)
  t.match(await h.build(running.build.id), { state: 'failed', reason: 'exit_code', exitCode: 3 })
  const log = await h.log(running.build.id)
  t.match(log, /service restarted; following the build container again/)
  t.match(log, /^before the crash$/m, 'what it printed while nobody watched is in the log')

  const exited = await abandoned(h, h.fake, async () => ({ exitCode: 2 }), 't')
  await h.reconciler.reconcile()
  await ended(h, exited.build.id)
  t.match(await h.build(exited.build.id), { state: 'failed', reason: 'exit_code', exitCode: 2 })
  t.equal(h.fake.jobs.size, 0, 'both jobs are removed')
})

t.test('no job: requeued when none was recorded, lost when it was', async (t) => {
  const h = await runnerHarness(t)
  const never = await h.claim()
  await h.lifecycle.record(never.id, { engine: 'fake', arch: 'x86_64' })
  h.lifecycle.leases.forget(never.id)
  const lost = await abandoned(h, h.fake, async () => undefined, 't')
  h.fake.vanish(lost.jobId)
  await h.reconciler.reconcile()
  const requeued = await h.build(never.id)
  t.equal(requeued.state, 'queued', 'nothing ran: it waits for its turn again')
  t.equal(requeued.engine, undefined, 'and forgets the engine it was meant for')
  t.match(await h.build(lost.build.id), { state: 'failed', reason: 'lost' })
})

t.test('a job without a live build is removed; a build\'s job is not', async (t) => {
  const h = await runnerHarness(t)
  const done = await abandoned(h, h.fake, async () => ({ exitCode: 0 }))
  await h.lifecycle.finish(await h.build(done.build.id), { state: 'cancelled' })
  const stray = await h.fake.create(jobOf('no-such-build'))
  const queued = await h.lifecycle.submit({ id: 'q', stream: 't', request: { force: false, skipPrune: false }, createdAt: '' })
  t.equal(queued.kind, 'created')
  const kept = await h.fake.create(jobOf('q'))
  await h.reconciler.reconcile()
  t.notOk(h.fake.jobs.has(done.jobId), 'the finished build\'s job is removed')
  t.notOk(h.fake.jobs.has(stray), 'a job of no build is removed')
  t.ok(h.fake.jobs.has(kept), 'a live build\'s job stays')
})

t.test('a retried build\'s earlier attempt\'s job is removed, on any engine; its current one stays', async (t) => {
  const h = await runnerHarness(t, { engines: 2, arches: ['x86_64', 'x86_64'], infrastructureRetries: 1 })
  const [first, second] = h.fakes as [FakeExecutor, FakeExecutor]
  const build = await h.claim()
  const failed = await first.create(jobOf(build.id))
  await h.lifecycle.record(build.id, { containerId: failed, engine: first.name, arch: 'x86_64' })
  const requeued = await h.lifecycle.finish(await h.build(build.id), { state: 'failed', reason: 'infrastructure', message: 'm' })
  t.equal(requeued?.state, 'queued')
  await h.reconciler.reconcile()
  t.notOk(first.jobs.has(failed), 'queued again: the failed attempt\'s job goes')

  let exit!: () => void
  const later = new Promise<void>((resolve) => { exit = resolve })
  second.program = async () => { await later; return { exitCode: 3 } }
  const stale = await first.create(jobOf(build.id))
  await h.lifecycle.claimNext(10, { id: build.id, engine: second.name, arch: 'x86_64', capacity: 1 })
  const current = await second.create(jobOf(build.id))
  await second.start(current)
  await h.lifecycle.record(build.id, { containerId: current })
  // As after a crash: the reconciler adopts the retry.
  h.lifecycle.leases.forget(build.id)
  await h.reconciler.reconcile()
  t.notOk(first.jobs.has(stale), 'running in another container: the earlier attempt\'s job goes')
  t.ok(second.jobs.has(current), 'the current attempt\'s job stays')
  exit()
  await ended(h, build.id)
  t.match(await h.build(build.id), { state: 'failed', reason: 'exit_code', attempts: [{ engine: first.name }, { engine: second.name }] })
})

t.test('every engine is walked; each build is looked for on the engine it recorded', async (t) => {
  const h = await runnerHarness(t, { engines: 2 })
  const [first, second] = h.fakes as [FakeExecutor, FakeExecutor]
  const old = await abandoned(h, first, async () => ({ exitCode: 4 }), 's', { engine: false })
  const there = await abandoned(h, second, async () => ({ exitCode: 5 }), 't')
  first.crash()
  await t.rejects(h.reconciler.reconcile(), /fake engine fake is down/, 'a pass reports the engine that failed')
  await ended(h, there.build.id)
  t.match(await h.build(there.build.id), { state: 'failed', exitCode: 5 }, 'the other engine\'s build is decided all the same')
  t.equal((await h.build(old.build.id)).state, 'running', 'the down engine\'s build waits for a later pass')
  first.restore()
  await h.reconciler.reconcile()
  await ended(h, old.build.id)
  t.match(await h.build(old.build.id), { state: 'failed', exitCode: 4 }, 'a build that recorded no engine is the default engine\'s')
  t.notOk(second.calls.includes(`inspect ${old.jobId}`), 'each engine is asked only for its own builds')
  t.notOk(first.calls.includes(`inspect ${there.jobId}`))
})

t.test('an engine silent for builds.engineLostMs: its unsupervised builds\' attempts are lost, and retried', async (t) => {
  const h = await runnerHarness(t, { engines: 2, arches: ['x86_64', 'x86_64'], infrastructureRetries: 1, engineLostMs: 300 })
  const [first] = h.fakes as [FakeExecutor, FakeExecutor]
  const { build } = await abandoned(h, first, async () => undefined)
  first.crash()
  await t.rejects(h.reconciler.reconcile(), /fake engine fake is down/)
  t.equal((await h.build(build.id)).state, 'running', 'silent for less than engineLostMs: it waits')
  await new Promise((resolve) => setTimeout(resolve, 350))
  await t.rejects(h.reconciler.reconcile(), /fake engine fake is down/)
  t.match(await h.build(build.id), {
    state: 'queued', attempts: [{ engine: 'fake', state: 'failed', reason: 'infrastructure', message: /the engine fake did not answer for \d+s/ }]
  }, 'its attempt is lost: queued again for another engine')
})

t.test('a build whose engine is not registered any more fails `infrastructure`', async (t) => {
  const h = await runnerHarness(t)
  const build = await h.claim()
  await h.lifecycle.record(build.id, { containerId: 'x', engine: 'gone', arch: 's390x' })
  h.lifecycle.leases.forget(build.id)
  await h.reconciler.reconcile()
  t.match(await h.build(build.id), { state: 'failed', reason: 'infrastructure', message: /engine gone .* not configured/ })
})
