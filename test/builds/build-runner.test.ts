import t from 'tap'
import type { Build } from '../../src/builds/model.js'
import { FakeExecutor, type Program } from '../executor/fake-executor.js'
import { runnerHarness } from './runner-harness.js'

// A build's path through the runner, on an engine in memory (the same path
// on the real engine: build-flow.test.ts, test/executor/docker/): claim,
// prepare, run, observe, decide, publish, finish. The store, the lifecycle,
// the config mirror, the result intake and the artifact store are the real ones.

const exits = (exitCode: number, oomKilled = false): Program => async (run) => {
  run.print('working')
  return { exitCode, oomKilled }
}
/** Prints, then runs until stopped. */
const forever: Program = async (run) => { run.print('working'); return undefined }

t.test('a build that posts its result is published, and records the engine and arch that ran it', async (t) => {
  const h = await runnerHarness(t)
  h.fake.program = h.builds('1.0')
  const claimed = await h.claim()
  await h.runner.run(claimed, h.fake)
  const done = await h.build(claimed.id)
  t.match(done, { state: 'succeeded', engine: 'fake', arch: 'x86_64', exitCode: 0, result: { cosaBuildId: '1.0', arch: 'x86_64' } }, done.message ?? '')
  t.equal(done.containerId, 'fake-job-1', 'the job id is recorded as the build\'s containerId (the API field)')
  t.ok(await h.artifacts.getBytes('s/builds/1.0/x86_64/meta.json'), 'published to the artifact store')
  t.equal(h.fake.jobs.size, 0, 'a finished build has no job left')
  const log = await h.log(claimed.id)
  t.match(log, /engine fake \(x86_64\)/, 'the log says where it ran')
  t.match(log, /^==> cosa build$/m)
  t.match(log, /^built$/m, 'the job\'s output is in the build\'s log')
  t.match(log, /build succeeded/)
})

t.test('a result whose post did not get through (the service restarting) is taken from the workdir\'s report', async (t) => {
  const h = await runnerHarness(t)
  h.fake.program = h.builds('1.0', { posted: false })
  const claimed = await h.claim()
  await h.runner.run(claimed, h.fake)
  const done = await h.build(claimed.id)
  t.match(done, { state: 'succeeded', result: { cosaBuildId: '1.0', arch: 'x86_64' } }, done.message ?? '')
  t.ok(await h.artifacts.getBytes('s/builds/1.0/x86_64/meta.json'), 'published')
  t.match(await h.log(claimed.id), /did not reach the service; taking it from the workdir's report \(1\.0\)/)
})

t.test('how a job ends decides the build', async (t) => {
  const cases: Array<[string, Program, Partial<Build>]> = [
    ['non-zero exit', exits(2), { state: 'failed', reason: 'exit_code', exitCode: 2 }],
    ['out of memory', exits(137, true), { state: 'failed', reason: 'oom' }],
    ['zero without a result', exits(0), { state: 'failed', reason: 'invalid_result' }]
  ]
  for (const [name, program, expected] of cases) {
    const h = await runnerHarness(t)
    h.fake.program = program
    const claimed = await h.claim()
    await h.runner.run(claimed, h.fake)
    t.match(await h.build(claimed.id), expected, name)
    t.equal(h.fake.jobs.size, 0, `${name}: the job is removed`)
  }
})

t.test('cancel stops the job; the build is cancelled', async (t) => {
  const h = await runnerHarness(t)
  h.fake.program = forever
  const claimed = await h.claim()
  const running = h.runner.run(claimed, h.fake)
  await h.until('the job to print', async () => /working/.test(await h.log(claimed.id)))
  await h.lifecycle.requestCancel(await h.build(claimed.id))
  await running
  t.match(await h.build(claimed.id), { state: 'cancelled' })
  t.ok(h.fake.calls.includes('stop'), 'the job was stopped')
  t.equal(h.fake.jobs.size, 0)
})

t.test('a job that outlives the stream\'s timeout is stopped and the build fails `timeout`', async (t) => {
  const h = await runnerHarness(t, { timeoutSeconds: 1 })
  h.fake.program = forever
  const claimed = await h.claim()
  const started = Date.now()
  await h.runner.run(claimed, h.fake)
  t.match(await h.build(claimed.id), { state: 'failed', reason: 'timeout' })
  t.ok(Date.now() - started >= 900, 'not before the timeout')
  t.equal(h.fake.jobs.size, 0)
})

/** Runs a build whose engine stops answering while it prints, then answers again. */
async function engineDiesMidBuild (h: Awaited<ReturnType<typeof runnerHarness>>) {
  h.fake.program = forever
  const claimed = await h.claim()
  const running = h.runner.run(claimed, h.fake)
  await h.until('the job to print', async () => /working/.test(await h.log(claimed.id)))
  h.fake.crash()
  await new Promise((resolve) => setTimeout(resolve, 400))
  h.fake.restore()
  await running
  return claimed
}

t.test('the engine dies mid-build and comes back: the build fails `infrastructure`, not the build\'s fault', async (t) => {
  const h = await runnerHarness(t)
  const claimed = await engineDiesMidBuild(h)
  const done = await h.build(claimed.id)
  t.match(done, { state: 'failed', reason: 'infrastructure', exitCode: 143 }, done.message ?? '')
  t.match(await h.log(claimed.id), /stopped answering during the build/)
})

t.test('with a retry allowed, the attempt the engine killed is recorded and the next one, run again, succeeds', async (t) => {
  const h = await runnerHarness(t, { infrastructureRetries: 1 })
  const claimed = await engineDiesMidBuild(h)
  const requeued = await h.build(claimed.id)
  t.match(requeued, { state: 'queued', attempts: [{ engine: 'fake', state: 'failed', reason: 'infrastructure' }] })
  t.equal(h.fake.jobs.size, 0, 'the failed attempt\'s job is removed')
  h.fake.program = h.builds('1.0')
  const again = (await h.lifecycle.claimNext(10))!
  await h.runner.run(again, h.fake)
  const done = await h.build(claimed.id)
  t.match(done, { state: 'succeeded', attempts: [{ reason: 'infrastructure' }, { state: 'succeeded' }] }, done.message ?? '')
  const log = await h.log(claimed.id)
  t.match(log, /attempt 1 failed \(infrastructure: /)
  t.notMatch(log, /was lost/, 'the second job\'s log is not read against the first one\'s marks')
})

t.test('an engine that stops answering for builds.engineLostMs: the attempt is lost, `infrastructure`', async (t) => {
  const h = await runnerHarness(t, { engineLostMs: 500 })
  h.fake.program = forever
  const claimed = await h.claim()
  const running = h.runner.run(claimed, h.fake)
  await h.until('the job to print', async () => /working/.test(await h.log(claimed.id)))
  const crashed = Date.now()
  h.fake.crash()
  await running
  t.match(await h.build(claimed.id), { state: 'failed', reason: 'infrastructure', message: /went away during the build and did not come back/ })
  t.ok(Date.now() - crashed < 10_000, `decided ${Date.now() - crashed} ms after the engine went silent, not at the build's timeout`)
  t.match(await h.log(claimed.id), /waiting for it \(at most 0.5s\)/)
})

t.test('a job deleted from outside: the build fails `lost`', async (t) => {
  const h = await runnerHarness(t)
  h.fake.program = forever
  const claimed = await h.claim()
  const running = h.runner.run(claimed, h.fake)
  await h.until('the job to print', async () => /working/.test(await h.log(claimed.id)))
  h.fake.vanish((await h.build(claimed.id)).containerId!)
  await running
  t.match(await h.build(claimed.id), { state: 'failed', reason: 'lost' })
})

t.test('an engine that is down when a build starts fails it `infrastructure`; a missing image is the stream\'s problem', async (t) => {
  const h = await runnerHarness(t)
  h.fake.crash()
  const claimed = await h.claim()
  await h.runner.run(claimed, h.fake)
  t.match(await h.build(claimed.id), { state: 'failed', reason: 'infrastructure', message: /fake engine fake is down/ })
  h.fake.restore()
  const h2 = await runnerHarness(t)
  const other = new FakeExecutor({ workdir: () => '/nonexistent', images: [] })
  h2.fake.imageUser = (image) => other.imageUser(image)
  const second = await h2.claim()
  await h2.runner.run(second, h2.fake)
  t.match(await h2.build(second.id), { state: 'failed', reason: 'image_unavailable', engine: 'fake', arch: 'x86_64' })
})
