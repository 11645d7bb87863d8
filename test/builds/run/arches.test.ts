import { readFile, rm, symlink } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { ArchRun } from '../../../src/builds/model.js'
import { archEnded, closedArches, nextStep, secondaryArch } from '../../../src/builds/run/arches.js'
import type { Program } from '../../executor/fake-executor.js'
import { runnerHarness } from '../runner-harness.js'

// A multi-arch build's rules (run/arches.ts, no I/O), then its path through
// the runner on two engines in memory, x86_64 and aarch64, with the real
// store, lifecycle, result intake and artifact store. The same on real
// engines, cosa-lite for arm64 included: test/engines/multi-arch.test.ts.

const result = (id: string, arch: string, files = 1) => ({
  cosaBuildId: id, arch, ostreeCommit: 'c', artifacts: [], files: Array.from({ length: files }, (_, i) => ({ path: `builds/${id}/${arch}/f${i}`, sha256: 'x', size: 1 }))
})

t.test('the rules: which arch is next, and how the build ends', async (t) => {
  const runs: ArchRun[] = [{ arch: 'x86_64', state: 'running' }, { arch: 'aarch64', state: 'pending' }, { arch: 's390x', state: 'pending' }]
  t.equal(secondaryArch({ arch: 'x86_64', arches: runs }), undefined, 'the primary works in the stream\'s workdir')
  t.equal(secondaryArch({ arch: 'aarch64', arches: runs }), 'aarch64', 'another arch in its own')
  t.equal(secondaryArch({ arch: 'aarch64' }), undefined, 'a build of one arch has no arches record')

  const built = archEnded(runs, 'x86_64', { state: 'succeeded', exitCode: 0, result: result('1.0', 'x86_64') }, 'at', 's')
  t.same(nextStep(built), { arch: 'aarch64' }, 'the primary built: the next arch')
  const failedPrimary = archEnded(runs, 'x86_64', { state: 'failed', reason: 'exit_code', message: 'the build exited with code 2', exitCode: 2 }, 'at', 's')
  t.match(nextStep(failedPrimary), { final: { state: 'failed', reason: 'exit_code', message: 'x86_64: the build exited with code 2', result: undefined } },
    'a failed primary ends the build, named')

  const secondBuilt = archEnded(built, 'aarch64', {
    state: 'succeeded',
    result: { ...result('1.0', 'aarch64'), artifacts: [{ name: 'qemu', path: 'builds/1.0/aarch64/q.qcow2', sha256: 'x', size: 1, url: '/v1/builds/b/artifacts/qemu' }] }
  }, 'at', 's')
  t.equal(secondBuilt[1]!.result!.artifacts[0]!.url, '/v1/streams/s/builds/1.0/aarch64/q.qcow2',
    'a secondary arch\'s artifact is downloaded in cosa\'s layout (the build\'s route serves the primary\'s)')
  const s390xFailed = archEnded(secondBuilt, 's390x', { state: 'failed', reason: 'infrastructure', message: 'engine lost' }, 'at', 's')
  t.match(nextStep(s390xFailed), {
    final: { state: 'failed', reason: 'infrastructure', message: 's390x: engine lost (x86_64 succeeded, aarch64 succeeded)', result: { cosaBuildId: '1.0', arch: 'x86_64' } }
  }, 'a later arch fails the build, named; the result is the primary\'s, as published')
  const all = archEnded(secondBuilt, 's390x', { state: 'succeeded', result: result('1.0', 's390x', 2) }, 'at', 's')
  const end = nextStep(all)
  t.match(end, { final: { state: 'succeeded', result: { cosaBuildId: '1.0', arch: 'x86_64' } } }, 'every arch built: succeeded')
  t.equal('final' in end && end.final.result?.files?.length, 4, 'with every arch\'s files')

  const unchanged = archEnded(archEnded(runs, 'x86_64', { state: 'unchanged', result: result('1.0', 'x86_64') }, 'at', 's'),
    'aarch64', { state: 'unchanged' }, 'at', 's')
  t.match(nextStep(archEnded(unchanged, 's390x', { state: 'unchanged' }, 'at', 's')), { final: { state: 'unchanged' } }, 'all unchanged: unchanged')
  t.match(nextStep(archEnded(unchanged, 's390x', { state: 'succeeded' }, 'at', 's')), { final: { state: 'succeeded' } },
    'an arch the build lacked was built: succeeded')
})

async function multiArch (t: Test) {
  const h = await runnerHarness(t, { engines: 2 })
  const [x86, arm] = h.fakes as [typeof h.fake, typeof h.fake]
  const stream = (await h.store.streams.getStream('s'))!
  await h.store.streams.putStream({ ...stream, arches: ['x86_64', 'aarch64'] })
  /** What cosa does when nothing changed: builds/latest stays, the synced meta.json is posted as unchanged. */
  const unchanged = (id: string): Program => async (run) => {
    await rm(join(run.workdir, 'builds/latest'), { force: true })
    await symlink(id, join(run.workdir, 'builds/latest'))
    const meta = await readFile(join(run.workdir, 'builds', id, 'x86_64', 'meta.json'), 'utf8')
    if (await h.intake.authorize(run.job.buildId, run.job.resultToken) !== 'ok') return { exitCode: 9 }
    await h.intake.accept(run.job.buildId, 'unchanged', 'x86_64', meta)
    return { exitCode: 0 }
  }
  const scripts: string[] = []
  const armBuilds = (id: string): Program => async (run) => {
    scripts.push(run.job.script)
    return h.builds(id, { arch: 'aarch64' })(run)
  }
  return { h, x86, arm, unchanged, armBuilds, scripts }
}

t.test('two arches: the primary decides the id, aarch64 builds it on its engine and in its own workdir', async (t) => {
  const { h, x86, arm, unchanged, armBuilds, scripts } = await multiArch(t)
  x86.program = h.builds('1.0')
  arm.program = armBuilds('1.0')
  const claimed = await h.claim()
  await h.runner.run(claimed, x86)
  const done = await h.build(claimed.id)
  t.match(done, {
    state: 'succeeded',
    engine: arm.name,
    arch: 'aarch64',
    result: { cosaBuildId: '1.0', arch: 'x86_64' },
    arches: [
      { arch: 'x86_64', state: 'succeeded', engine: x86.name, result: { cosaBuildId: '1.0', arch: 'x86_64' } },
      { arch: 'aarch64', state: 'succeeded', engine: arm.name, result: { cosaBuildId: '1.0', arch: 'aarch64' } }
    ]
  }, done.message ?? '')
  t.match(scripts[0], /cosa build --force --version 1\.0/, 'aarch64 builds the primary\'s id, anew')
  t.same((await h.publisher.readBuildsJson('s'))?.builds.map((b) => [b.id, b.arches]), [['1.0', ['x86_64', 'aarch64']]],
    'one builds.json entry with both arches')
  t.ok(await h.artifacts.getBytes('s/builds/1.0/aarch64/meta.json'), 'aarch64 published under the id')
  t.ok(await readFile(join(h.dataDir.workdir('s', 'aarch64'), 'builds/1.0/aarch64/meta.json')), 'in its own workdir (work-aarch64)')
  t.match(JSON.parse((await h.store.builds.getMeta(claimed.id))!), { 'coreos-assembler.basearch': 'x86_64' }, 'the build\'s meta.json is the primary\'s')
  t.equal(done.result?.files?.filter((f) => f.path.includes('/aarch64/')).length, 2, 'its files list both arches\'')
  t.match(await h.log(claimed.id), /aarch64: building 1\.0/)

  x86.program = unchanged('1.0')
  const creates = arm.calls.filter((c) => c === 'create').length
  const again = await h.claim()
  await h.runner.run(again, x86)
  t.match(await h.build(again.id), {
    state: 'unchanged',
    engine: x86.name,
    arches: [{ arch: 'x86_64', state: 'unchanged' }, { arch: 'aarch64', state: 'unchanged', result: { cosaBuildId: '1.0', artifacts: [{ name: 'ostree' }] } }]
  }, 'the same inputs: unchanged for both')
  t.equal(arm.calls.filter((c) => c === 'create').length, creates, 'aarch64 not run: the build has it already')
})

t.test('a failing arch fails the build, named; what the primary published stays', async (t) => {
  const { h, x86, arm } = await multiArch(t)
  x86.program = h.builds('1.0')
  arm.program = async (run) => { run.print('boom'); return { exitCode: 2 } }
  const claimed = await h.claim()
  await h.runner.run(claimed, x86)
  t.match(await h.build(claimed.id), {
    state: 'failed',
    reason: 'exit_code',
    message: /^aarch64: the build exited with code 2/,
    result: { cosaBuildId: '1.0' },
    arches: [{ state: 'succeeded' }, { state: 'failed', reason: 'exit_code' }]
  })
  t.same((await h.publisher.readBuildsJson('s'))?.builds.map((b) => [b.id, b.arches]), [['1.0', ['x86_64']]], 'x86_64 stays published')
  t.equal(arm.jobs.size, 0, 'the failed job is removed')
})

t.test('a build ended from outside its arch sequence (the reconciler: its job vanished) closes its arches record', async (t) => {
  const runs: ArchRun[] = [{ arch: 'x86_64', state: 'succeeded' }, { arch: 'aarch64', state: 'running' }, { arch: 's390x', state: 'pending' }]
  const lost = { state: 'failed' as const, reason: 'lost' as const, message: 'the build container disappeared' }
  t.match(closedArches(runs, 'aarch64', lost, 'at', 's'), [
    { state: 'succeeded' }, { state: 'failed', reason: 'lost', finishedAt: 'at' }, { state: 'skipped' }
  ], 'the running arch ends as the build, the pending one is skipped')

  const { h, x86 } = await multiArch(t)
  let release = () => {}
  x86.program = async () => new Promise((resolve) => { release = () => resolve({ exitCode: 0 }) })
  const claimed = await h.claim()
  const running = h.runner.run(claimed, x86)
  await h.until('the primary to run', async () => (await h.build(claimed.id)).arches?.[0]?.state === 'running')
  // As the reconciler does when the job is gone: the lifecycle alone, without the record.
  await h.lifecycle.finish(await h.build(claimed.id), lost)
  t.match(await h.build(claimed.id), {
    state: 'failed', reason: 'lost', arches: [{ arch: 'x86_64', state: 'failed', reason: 'lost' }, { arch: 'aarch64', state: 'skipped' }]
  })
  release()
  await running
  t.match(await h.build(claimed.id), { state: 'failed', reason: 'lost' }, 'the supervisor, too late, changes nothing')
})

t.test('a restart between two arches goes on with the next, from the arches record', async (t) => {
  const { h, x86, arm, armBuilds } = await multiArch(t)
  arm.program = armBuilds('1.0')
  const claimed = await h.claim()
  // As a service that stopped after the primary published and before aarch64 had a job leaves it.
  const primary = { arch: 'x86_64', state: 'succeeded' as const, engine: x86.name, result: { cosaBuildId: '1.0', arch: 'x86_64', ostreeCommit: 'c', artifacts: [] } }
  await h.lifecycle.record(claimed.id, { engine: x86.name, arch: 'x86_64', arches: [primary, { arch: 'aarch64', state: 'waiting', waitingFor: 'slot' }] })
  // As after a crash: no process holds the build's lease any more.
  h.lifecycle.leases.forget(claimed.id)
  await h.reconciler.reconcile()
  await h.until('the build to end', async () => (await h.build(claimed.id)).state !== 'running')
  t.match(await h.build(claimed.id), { state: 'succeeded', engine: arm.name, arches: [{ state: 'succeeded' }, { state: 'succeeded', engine: arm.name }] })
  t.match(await h.log(claimed.id), /going on with the arches not built yet/)
})
