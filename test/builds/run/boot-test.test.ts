import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { text } from 'node:stream/consumers'
import t from 'tap'
import { FileLogStore } from '../../../src/logs/file-log-store.js'
import type { PostedResult } from '../../../src/builds/model.js'
import { readBootTest } from '../../../src/builds/run/boot-test.js'
import type { RunContext } from '../../../src/builds/run/context.js'
import { DEFAULT_RECIPE } from '../../../src/cosa/recipe.js'
import { configRepo, register, requireDocker, startApp, submit, tempDir, type TestApp } from '../../helpers.js'

// The boot test through the real service: examples/bootable built by
// cosa-lite under the unprivileged profile, then booted by `cosa kola run
// basic` (qemu TCG) in the build container. One stream serves every case,
// so the packages are fetched once; each boot is ~30 s quiet.

t.setTimeout(60 * 60_000)

const BUILD_MS = 20 * 60_000
const DONE = ['succeeded', 'unchanged', 'failed', 'cancelled']

const get = async (h: TestApp, url: string) => h.app.inject({ method: 'GET', url })
const storedBuilds = async (h: TestApp, stream: string) =>
  ((await get(h, `/v1/streams/${stream}/builds/builds.json`)).json().builds ?? []).map((b: { id: string }) => b.id)

/** qemu processes in a container's cgroup. */
async function qemuIn (containerId: string) {
  const pids: number[] = []
  for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
    const [cmd, cgroup] = await Promise.all([readFile(`/proc/${pid}/cmdline`, 'utf8'), readFile(`/proc/${pid}/cgroup`, 'utf8')])
      .catch(() => ['', ''])
    if (cmd.startsWith('qemu-system') && cgroup.includes(containerId)) pids.push(Number(pid))
  }
  return pids
}

const alive = (pid: number) => readFile(`/proc/${pid}/cmdline`, 'utf8').then((c) => c.length > 0, () => false)

t.test('what a boot test left in the workdir is read for the build that ran it', async (t) => {
  const work = await tempDir(t, 'boot-read-')
  const logs = new FileLogStore(await tempDir(t, 'boot-read-logs-'), 1 << 20)
  const ctx = (platforms = ['qemu']) => ({
    build: { id: 'b1', stream: 's', request: { force: false, skipPrune: false } },
    stream: { recipe: DEFAULT_RECIPE, platforms, bootTest: { enabled: true, mode: 'gate', memoryMiB: 2048 } },
    executor: { workdir: () => work },
    deps: { logs }
  }) as unknown as RunContext
  const posted = (outcome: 'built' | 'unchanged') => ({ outcome, result: { cosaBuildId: '1.0' } }) as PostedResult
  const machine = join(work, 'tmp/kola/basic/m1')
  await mkdir(join(work, 'tmp/kola/reports'), { recursive: true })
  await mkdir(machine, { recursive: true })
  await writeFile(join(machine, 'console.txt'), 'Linux version 6.1\n')
  await writeFile(join(machine, 'journal.txt'), 'a journal\n')

  t.equal(await readBootTest(ctx(), posted('built')), undefined, 'no exit status: the step did not run')
  await writeFile(join(work, 'tmp/kola/exit-status'), '1 0.9\n')
  t.equal(await readBootTest(ctx(), posted('built')), undefined, 'another build\'s status is not this build\'s')
  await writeFile(join(work, 'tmp/kola/exit-status'), '1 1.0\n')
  t.match(await readBootTest(ctx(), posted('built')),
    { mode: 'gate', record: { status: 'failed', reason: /kola exited 1 without a readable report/ } })
  await writeFile(join(work, 'tmp/kola/reports/report.json'), await readFile(new URL('../../cosa/fixtures/kola-report-upstream.json', import.meta.url)))
  await writeFile(join(work, 'tmp/kola/exit-status'), '77 1.0\n')
  t.match(await readBootTest(ctx(), posted('built')), { record: { status: 'warned' } }, 'upstream kola\'s 77 is a warning')
  t.equal(await text((await logs.attachment('b1', 'console.txt'))!.body), 'Linux version 6.1\n', 'the console is kept with the log')
  t.equal(await text((await logs.attachment('b1', 'journal.txt'))!.body), 'a journal\n')
  t.equal(await readBootTest(ctx(), posted('unchanged')), undefined, 'an unchanged build is not judged')
  t.match(await readBootTest(ctx(['metal']), posted('built')), { record: { status: 'skipped', reason: 'the build makes no qemu image' } })
  await logs.remove('b1')
  t.equal(await logs.attachment('b1', 'console.txt'), undefined, 'removed with the log')
})

t.test('examples/minimal with a boot test: skipped, the build succeeds', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t)
  const repo = await configRepo(t, 'minimal')
  await register(h, 'minimal', { config: { url: repo.url, ref: 'main' }, bootTest: { enabled: true } })
  const done = await h.waitFor((await submit(h, 'minimal')).id, DONE, BUILD_MS)
  t.equal(done.state, 'succeeded', done.message ?? '')
  t.equal(done.bootTest?.status, 'skipped')
  t.match(done.bootTest?.reason, /not bootable/)
  t.match((await get(h, `/v1/builds/${done.id}/log`)).body, /==> cosa kola run basic --qemu-memory 2048\n/)
})

t.test('examples/bootable: gate passes a good boot, stops a failing one, warn publishes it; cancel stops qemu', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t)
  const repo = await configRepo(t, 'bootable')
  // The packages come from Debian's archive (cosa fetch).
  const stream = (mode: 'gate' | 'warn') =>
    register(h, 'boot', { config: { url: repo.url, ref: 'main' }, networkMode: 'host', bootTest: { enabled: true, mode } })
  await stream('gate')

  const good = await h.waitFor((await submit(h, 'boot')).id, DONE, BUILD_MS)
  t.equal(good.state, 'succeeded', good.message ?? '')
  t.equal(good.bootTest?.status, 'passed', JSON.stringify(good.bootTest))
  t.equal(good.bootTest?.accel, 'tcg')
  t.equal(good.bootTest?.systemState, 'running')
  t.equal(good.bootTest?.bootedCommit, good.result?.ostreeCommit, 'the guest booted the build\'s commit')
  for (const m of ['firstOutput', 'switch-root', 'multi-user', 'checked']) t.type(good.bootTest?.milestones?.[m], 'number', m)
  t.comment(`boot test ${good.bootTest?.durationMs} ms; milestones ${JSON.stringify(good.bootTest?.milestones)}`)
  const console = await get(h, `/v1/builds/${good.id}/boot-test/console.txt`)
  t.equal(console.statusCode, 200)
  t.match(console.body, /Linux version/, 'the console is downloadable')
  t.equal((await get(h, `/v1/builds/${good.id}/boot-test/journal.txt`)).statusCode, 200)
  t.same(await storedBuilds(h, 'boot'), [good.result.cosaBuildId], 'published')

  const units = join(repo.dir, 'overlay.d/90-fail/usr/lib/systemd/system')
  await mkdir(join(units, 'multi-user.target.wants'), { recursive: true })
  await symlink('../boot-fail.service', join(units, 'multi-user.target.wants/boot-fail.service'))
  await writeFile(join(units, 'boot-fail.service'), '')
  await repo.commit('overlay.d/90-fail/usr/lib/systemd/system/boot-fail.service',
    '[Unit]\nDescription=A unit that fails (test only)\n[Service]\nType=oneshot\nExecStart=/bin/false\n' +
    '[Install]\nWantedBy=multi-user.target\n')
  const gated = await h.waitFor((await submit(h, 'boot')).id, DONE, BUILD_MS)
  t.equal(gated.state, 'failed')
  t.equal(gated.reason, 'boot_test', gated.message)
  t.equal(gated.failedStep, 'kola run basic')
  t.equal(gated.bootTest?.status, 'failed')
  t.equal(gated.bootTest?.reason, 'degraded')
  t.same(gated.bootTest?.failedUnits, ['boot-fail.service'], 'the failed unit is named')
  t.same(await storedBuilds(h, 'boot'), [good.result.cosaBuildId], 'nothing published')
  t.match((await get(h, `/v1/builds/${gated.id}/boot-test/journal.txt`)).body, /boot-fail/, 'the journal of a gated build is kept')

  await stream('warn')
  const warned = await h.waitFor((await submit(h, 'boot')).id, DONE, BUILD_MS)
  t.equal(warned.state, 'succeeded', warned.message ?? '')
  t.equal(warned.bootTest?.status, 'failed', 'the failure is recorded')
  t.match(warned.message, /published although the boot test failed \(degraded\)/)
  t.same(await storedBuilds(h, 'boot'), [warned.result.cosaBuildId, good.result.cosaBuildId], 'published')

  const cancelled = await submit(h, 'boot', { force: true })
  let running
  for (const deadline = Date.now() + BUILD_MS; Date.now() < deadline;) {
    running = (await get(h, `/v1/builds/${cancelled.id}`)).json()
    if (running.phase === 'kola run basic' || DONE.includes(running.state)) break
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  t.equal(running.phase, 'kola run basic', 'the phase shows the boot test')
  let qemu: number[] = []
  for (let i = 0; i < 100 && !qemu.length; i++) {
    qemu = await qemuIn(running.containerId)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.ok(qemu.length, `qemu runs in the build container (${qemu.join(', ')})`)
  const asked = Date.now()
  await h.app.inject({ method: 'POST', url: `/v1/builds/${cancelled.id}/cancel` })
  const end = await h.waitFor(cancelled.id, DONE, 60_000)
  const seconds = (Date.now() - asked) / 1000
  t.equal(end.state, 'cancelled')
  t.ok(seconds < 10 + 5, `cancelled in ${seconds.toFixed(1)} s (grace 10 s)`)
  t.comment(`cancel took ${seconds.toFixed(1)} s`)
  for (const pid of qemu) t.notOk(await alive(pid), `qemu ${pid} is gone`)
})
