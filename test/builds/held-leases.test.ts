import t from 'tap'
import { jobOf, type Program } from '../executor/fake-executor.js'
import { runnerHarness } from './runner-harness.js'

// Leases and fencing (issue #14) in one process, on an engine in memory:
// another replica is played by writing its takeover into the same database.
// The same across real processes: test/replicas.test.ts.

type Harness = Awaited<ReturnType<typeof runnerHarness>>
const me = { owner: 'test', ms: 30_000 }
const other = { owner: 'other', ms: 60_000 }

/** Another replica takes the build over, as after this one paused past its lease. */
async function takenOver (h: Harness, buildId: string) {
  const token = h.lifecycle.leases.token(buildId)!
  await h.store.leases.renew(buildId, token, { ...me, ms: -1 })
  const taken = await h.store.leases.takeOver(buildId, token, other)
  if (!taken) throw new Error('the takeover was refused')
  return taken.token
}

/** Prints, posts its result, then ends when `release` is called. */
function held (h: Harness) {
  let release!: () => void
  const later = new Promise<void>((resolve) => { release = resolve })
  const program: Program = async (run) => {
    run.print('working')
    const built = await h.builds('1.0')(run)
    await later
    return built
  }
  return { program, release }
}

t.test('a supervisor whose lease was taken stops at its next renewal: it writes nothing and leaves the job', async (t) => {
  const h = await runnerHarness(t)
  const job = held(h)
  h.fake.program = job.program
  const claimed = await h.claim()
  const running = h.runner.run(claimed, h.fake)
  await h.until('the result to be posted', async () => (await h.store.builds.postedResult(claimed.id)) !== undefined)
  const before = await h.build(claimed.id)
  const token = await takenOver(h, claimed.id)
  t.same(await h.lifecycle.leases.renew(), [], 'no cancel requested')
  await running
  t.notOk(h.runner.isActive(claimed.id), 'the runner stopped supervising')
  t.equal(await h.lifecycle.phase(claimed.id, 'build'), undefined, 'and the lifecycle refuses its writes')
  job.release()
  t.match(await h.build(claimed.id), { state: 'running', phase: before.phase }, 'the build is as the new holder left it')
  t.equal(h.fake.jobs.size, 1, 'the job is left for the new holder')
  t.notOk(h.fake.calls.some((c) => /^(stop|remove)/.test(c)), 'never stopped or removed')
  t.equal(await h.artifacts.getBytes('s/builds/1.0/x86_64/meta.json').catch(() => undefined), undefined, 'nothing published')
  t.same((await h.store.leases.adoptable('third')).length, 0, 'the new lease holds')
  t.ok(await h.store.leases.renew(claimed.id, token, other), 'the new holder renews')
})

t.test('a job that ended while its replica was paused past its lease: the fenced phase write stops the publish', async (t) => {
  const h = await runnerHarness(t)
  const job = held(h)
  h.fake.program = job.program
  const claimed = await h.claim()
  const running = h.runner.run(claimed, h.fake)
  await h.until('the result to be posted', async () => (await h.store.builds.postedResult(claimed.id)) !== undefined)
  await takenOver(h, claimed.id)
  // The paused replica resumes: its job has ended, and no renewal ran first.
  job.release()
  await running
  t.match(await h.build(claimed.id), { state: 'running' }, 'no final state written')
  t.not((await h.build(claimed.id)).phase, 'publishing', 'the publishing phase was refused')
  t.equal(await h.artifacts.getBytes('s/builds/1.0/x86_64/meta.json').catch(() => undefined), undefined, 'nothing published')
  t.equal(h.fake.jobs.size, 1, 'the exited job is left for the new holder to decide')
})

t.test('the reconciler adopts a build only once its lease expired, and only while it holds the reconcile duty', async (t) => {
  const h = await runnerHarness(t)
  let release!: () => void
  const later = new Promise<void>((resolve) => { release = resolve })
  h.fake.program = async (run) => { run.print('working'); await later; return { exitCode: 3 } }
  const claimed = await h.claim()
  const jobId = await h.fake.create(jobOf(claimed.id))
  await h.fake.start(jobId)
  await h.lifecycle.record(claimed.id, { containerId: jobId, engine: 'fake', arch: 'x86_64' })
  // This process crashed and forgot; another replica took the build over and holds it.
  const live = await takenOver(h, claimed.id)
  h.lifecycle.leases.forget(claimed.id)
  await h.reconciler.reconcile()
  t.notOk(h.runner.isActive(claimed.id), 'a live lease of another replica is left alone')
  await h.store.leases.renew(claimed.id, live, { ...other, ms: -1 })
  await h.store.leases.releaseDuty('reconcile', 'test')
  t.ok(await h.store.leases.holdDuty('reconcile', { owner: 'other', ms: 60_000 }), 'another replica takes the duty')
  await h.reconciler.reconcile()
  t.notOk(h.runner.isActive(claimed.id), 'while another replica holds the reconcile duty, this one does nothing')
  await h.store.leases.releaseDuty('reconcile', 'other')
  await h.reconciler.reconcile()
  t.ok(h.runner.isActive(claimed.id), 'expired: adopted')
  t.ok(h.lifecycle.leases.token(claimed.id)! > live, 'under a new, higher token')
  t.equal(await h.store.leases.renew(claimed.id, live, other), undefined, 'the old holder is fenced out')
  release()
  await h.until('the build to end', async () => (await h.build(claimed.id)).state !== 'running')
  t.match(await h.build(claimed.id), { state: 'failed', reason: 'exit_code', exitCode: 3 }, 'ended by the adopter, from its job')
  t.equal(h.fake.jobs.size, 0, 'which removed the job')
})

t.test('a supervisor not renewed in time stops writing the log; the sweep takes the build over and it ends once', async (t) => {
  // No renewal runs in this harness: the lease lapses as in a paused process.
  const h = await runnerHarness(t, { leaseMs: 500 })
  let release!: () => void
  const later = new Promise<void>((resolve) => { release = resolve })
  const LINES = 30
  h.fake.program = async (run) => {
    for (let i = 1; i <= LINES; i++) {
      run.print(`line ${i}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    await later
    return { exitCode: 3 }
  }
  const claimed = await h.claim()
  const running = h.runner.run(claimed, h.fake)
  await running
  t.notOk(h.runner.isActive(claimed.id), 'past its deadline, at its next log write, the supervisor stopped')
  const stopped = await h.build(claimed.id)
  t.match(stopped, { state: 'running' }, `without writing a state: ${stopped.message}`)
  t.equal(h.fake.jobs.size, 1, 'the job is left running')
  await h.reconciler.reconcile()
  t.ok(h.runner.isActive(claimed.id), 'the sweep takes the lapsed build over (here, the same replica)')
  // From now on renewed, as the service does every third of a lease.
  const renewing = setInterval(() => { void h.lifecycle.leases.renew() }, 100)
  t.teardown(() => clearInterval(renewing))
  release()
  await h.until('the build to end', async () => (await h.build(claimed.id)).state !== 'running')
  t.match(await h.build(claimed.id), { state: 'failed', exitCode: 3 })
  const log = await h.log(claimed.id)
  t.same(Array.from({ length: LINES }, (_, i) => log.split('\n').filter((l) => l === `line ${i + 1}`).length), Array(LINES).fill(1),
    'each line once')
})
