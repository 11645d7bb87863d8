import { execa } from 'execa'
import t, { type Test } from 'tap'
import { DEFAULT_RECIPE } from '../../../src/cosa/recipe.js'
import { configRepo, register, requireDocker, startApp, submit, type TestApp } from '../../helpers.js'

// Interference from outside the service, on the real engine with cosa-lite:
// someone kills, removes or pauses a build's container (R5), a build runs out
// of memory as the main process or as a child (R6), and cancel is asked for
// in every state a build can be in (R13). Every build must reach a final
// state with the right reason, and leave no container behind.

const SLOW = [['shell', '--', 'sleep', '300'], ['build', '{build-flags}']]
const FINAL = ['succeeded', 'unchanged', 'failed', 'cancelled']
const LABEL = 'io.cosa-buildd.build-id'
const MiB = 1024 * 1024

const docker = (...args: string[]) => execa('docker', args, { reject: false, all: true })
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Containers (any state) that carry the build's label. */
async function leftovers (buildId: string) {
  return (await docker('ps', '-aq', '--filter', `label=${LABEL}=${buildId}`)).stdout.trim()
}

/** Waits until the build's container runs and its log shows `marker` (the step has begun). */
async function runningContainer (h: TestApp, buildId: string, marker = '==> cosa shell', timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const build = (await h.app.inject({ url: `/v1/builds/${buildId}` })).json()
    if (FINAL.includes(build.state)) throw new Error(`build ${buildId} ended ${build.state} (${build.reason}: ${build.message}) before its container ran`)
    if (build.containerId) {
      const running = (await docker('container', 'inspect', '-f', '{{.State.Running}}', build.containerId)).stdout.trim()
      const log = (await h.app.inject({ url: `/v1/builds/${buildId}/log` })).body
      if (running === 'true' && log.includes(marker)) return build.containerId as string
    }
    if (Date.now() > deadline) throw new Error(`build ${buildId} has no running container after ${timeoutMs} ms`)
    await sleep(100)
  }
}

async function setup (t: Test, overrides: Record<string, unknown> = {}) {
  const h = await startApp(t, overrides)
  const repo = await configRepo(t)
  return { h, config: { url: repo.url, ref: 'main' } }
}

t.test('R5: docker kill (SIGKILL) of a running build fails it with exit code 137', async (t) => {
  if (!await requireDocker(t)) return
  const { h, config } = await setup(t, { builds: { engineProbeMs: 500 } })
  await register(h, 'killed', { config, recipe: SLOW })
  const b = await submit(h, 'killed')
  const cid = await runningContainer(h, b.id)
  const kill = await docker('kill', cid)
  t.equal(kill.exitCode, 0, `docker kill: ${kill.all}`)
  const t0 = Date.now()
  const done = await h.waitFor(b.id, FINAL, 60_000)
  t.comment(`killed build decided ${Date.now() - t0} ms after docker kill: ${done.state}/${done.reason}/${done.exitCode}`)
  t.equal(done.state, 'failed')
  t.equal(done.reason, 'exit_code', done.message)
  t.equal(done.exitCode, 137)
  t.equal(await leftovers(b.id), '', 'no container left with the build\'s label')
})

t.test('R5: docker rm -f of a running build\'s container fails it as lost', async (t) => {
  if (!await requireDocker(t)) return
  const { h, config } = await setup(t, { builds: { engineProbeMs: 500 } })
  await register(h, 'removed', { config, recipe: SLOW })
  const b = await submit(h, 'removed')
  const cid = await runningContainer(h, b.id)
  const rm = await docker('rm', '-f', cid)
  t.equal(rm.exitCode, 0, `docker rm -f: ${rm.all}`)
  const t0 = Date.now()
  const done = await h.waitFor(b.id, FINAL, 60_000)
  t.comment(`removed build decided ${Date.now() - t0} ms after docker rm -f: ${done.state}/${done.reason}/${done.exitCode}`)
  t.equal(done.state, 'failed')
  t.equal(done.reason, 'lost', `${done.message} (exitCode ${done.exitCode})`)
  t.equal(await leftovers(b.id), '', 'no container left with the build\'s label')
})

t.test('R5: docker pause ends the build at its timeout, never hangs', async (t) => {
  if (!await requireDocker(t)) return
  const { h, config } = await setup(t, { builds: { stopGraceSeconds: 2 } })
  const timeoutSeconds = 6
  await register(h, 'paused', { config, recipe: SLOW, timeoutSeconds })
  const b = await submit(h, 'paused')
  const cid = await runningContainer(h, b.id)
  const pause = await docker('pause', cid)
  t.equal(pause.exitCode, 0, `docker pause: ${pause.all}`)
  const status = (await docker('container', 'inspect', '-f', '{{.State.Status}}', cid)).stdout.trim()
  t.equal(status, 'paused', 'the container is paused')
  const done = await h.waitFor(b.id, FINAL, 90_000)
  const late = Date.parse(done.finishedAt) - (Date.parse(done.startedAt) + timeoutSeconds * 1000)
  t.comment(`paused build ended ${done.state}/${done.reason} ${late} ms after its ${timeoutSeconds} s timeout ` +
    `(started ${done.startedAt}, finished ${done.finishedAt})`)
  t.equal(done.state, 'failed')
  t.equal(done.reason, 'timeout', done.message)
  t.ok(late >= 0, 'not before the timeout')
  t.ok(late < 30_000, 'within 30 s of the timeout')
  t.equal((await docker('container', 'inspect', cid)).exitCode, 1, 'the paused container is gone')
  t.equal(await leftovers(b.id), '', 'no container left with the build\'s label')
})

t.test('R6: OOM of the main process fails the build as oom', async (t) => {
  if (!await requireDocker(t)) return
  const { h, config } = await setup(t)
  await register(h, 'oom-main', {
    config,
    resources: { memoryBytes: 64 * MiB },
    recipe: [['shell', '--', 'python3', '-c', 'x = bytearray(300 << 20); import time; time.sleep(5)'], ['build', '{build-flags}']]
  })
  const b = await submit(h, 'oom-main')
  const done = await h.waitFor(b.id, FINAL, 120_000)
  t.comment(`main-process OOM: ${done.state}/${done.reason}, exitCode ${done.exitCode}: ${done.message}`)
  t.equal(done.state, 'failed')
  t.equal(done.reason, 'oom', done.message)
  t.equal(await leftovers(b.id), '', 'no container left with the build\'s label')
})

t.test('R6: OOM of a child while the container exits 0 still fails the build as oom', async (t) => {
  if (!await requireDocker(t)) return
  const { h, config } = await setup(t)
  const resources = { memoryBytes: 64 * MiB }
  // Control: the same recipe, without the allocation, succeeds at 64 MiB.
  await register(h, 'oom-control', {
    config, resources, recipe: [['shell', '--', 'bash', '-c', 'echo survived'], ...DEFAULT_RECIPE]
  })
  const control = await h.waitFor((await submit(h, 'oom-control')).id, FINAL, 180_000)
  t.equal(control.state, 'succeeded', `control build at 64 MiB: ${control.reason ?? ''} ${control.message ?? ''}`)

  await register(h, 'oom-child', {
    config,
    resources,
    recipe: [['shell', '--', 'bash', '-c', 'python3 -c "x = bytearray(300 << 20)" || true; echo survived'], ...DEFAULT_RECIPE]
  })
  const b = await submit(h, 'oom-child')
  const done = await h.waitFor(b.id, FINAL, 180_000)
  const log = (await h.app.inject({ url: `/v1/builds/${b.id}/log` })).body
  t.comment(`child OOM: ${done.state}/${done.reason}, exitCode ${done.exitCode}: ${done.message}`)
  t.match(log, /survived/, 'the step went on after the child was killed')
  t.equal(done.state, 'failed')
  t.equal(done.reason, 'oom', `${done.message} (exitCode ${done.exitCode})`)
  t.equal(done.exitCode, 0, 'the container itself exited 0')
  t.equal(await leftovers(b.id), '', 'no container left with the build\'s label')
})

t.test('R13: cancel in every state', async (t) => {
  if (!await requireDocker(t)) return
  const stopGraceSeconds = 2
  const { h, config } = await setup(t, { builds: { stopGraceSeconds, maxConcurrent: 4, engineProbeMs: 500 } })
  const cancel = (id: string) => h.app.inject({ method: 'POST', url: `/v1/builds/${id}/cancel` })
  await register(h, 'slow', { config, recipe: SLOW })
  await register(h, 'quick', { config, recipe: [['shell', '--', 'false'], ['build']] })
  await register(h, 'gone', { config, recipe: SLOW })

  const running = await submit(h, 'slow')
  const cid = await runningContainer(h, running.id)
  const queued = await submit(h, 'slow', { force: true })
  t.equal(queued.state, 'queued', 'the second build of the stream waits')

  await t.test('queued: cancelled at once, twice gives the same answer', async (t) => {
    const first = await cancel(queued.id)
    t.equal(first.statusCode, 200)
    t.equal(first.json().state, 'cancelled')
    const second = await cancel(queued.id)
    t.equal(second.statusCode, 200)
    t.same(second.json(), first.json(), 'the second cancel answers the same')
    t.notOk(first.json().containerId, 'a queued build never had a container')
    t.equal(await leftovers(queued.id), '', 'no container with its label')
  })

  await t.test('running: cancelled within stopGraceSeconds + 2 s, twice is idempotent', async (t) => {
    const t0 = Date.now()
    const first = await cancel(running.id)
    const second = await cancel(running.id)
    t.equal(first.statusCode, 200)
    t.equal(second.statusCode, 200)
    t.ok(first.json().cancelRequestedAt, 'the cancel request is recorded')
    t.equal(second.json().cancelRequestedAt, first.json().cancelRequestedAt, 'a second cancel is not a new request')
    if (second.json().state === first.json().state) t.same(second.json(), first.json(), 'the second cancel answers the same')
    const done = await h.waitFor(running.id, FINAL, 60_000)
    const took = Date.now() - t0
    t.comment(`running build cancelled in ${took} ms (bound ${(stopGraceSeconds + 2) * 1000} ms); ` +
      `finishedAt - cancelRequestedAt = ${Date.parse(done.finishedAt) - Date.parse(done.cancelRequestedAt)} ms`)
    t.equal(done.state, 'cancelled')
    t.ok(took <= (stopGraceSeconds + 2) * 1000, `cancelled within ${stopGraceSeconds + 2} s (took ${took} ms)`)
    t.equal((await docker('container', 'inspect', cid)).exitCode, 1, 'its container is gone')
    t.equal(await leftovers(running.id), '', 'no container with its label')
    const after = await cancel(running.id)
    t.equal(after.statusCode, 200)
    t.same(after.json(), done, 'cancelling it again changes nothing')
  })

  await t.test('terminal: 200 and the build unchanged', async (t) => {
    const finished = await h.waitFor((await submit(h, 'quick')).id, FINAL, 90_000)
    t.equal(finished.state, 'failed', 'the quick build failed by itself')
    const res = await cancel(finished.id)
    t.equal(res.statusCode, 200)
    t.same(res.json(), finished, 'the finished build is returned as it was')
    t.same((await h.app.inject({ url: `/v1/builds/${finished.id}` })).json(), finished, 'and stays as it was')
    t.equal(await leftovers(finished.id), '', 'no container with its label')
  })

  await t.test('unknown id: 404', async (t) => {
    const res = await cancel('01aaaaaaaaaaaaaaaaaaaaaaaa')
    t.equal(res.statusCode, 404)
  })

  await t.test('already gone: the container removed from outside just before the cancel', async (t) => {
    const b = await submit(h, 'gone')
    const gid = await runningContainer(h, b.id)
    const rm = await docker('rm', '-f', gid)
    t.equal(rm.exitCode, 0, `docker rm -f: ${rm.all}`)
    const t0 = Date.now()
    const res = await cancel(b.id)
    t.equal(res.statusCode, 200)
    const done = await h.waitFor(b.id, FINAL, 60_000)
    t.comment(`already-gone build ended ${done.state}${done.reason ? `/${done.reason}` : ''} ${Date.now() - t0} ms after the cancel` +
      (done.message ? `: ${done.message}` : ''))
    t.ok(done.state === 'cancelled' || (done.state === 'failed' && done.reason === 'lost'),
      `cancelled or failed/lost (got ${done.state}/${done.reason})`)
    t.equal(await leftovers(b.id), '', 'no container with its label')
  })
})
