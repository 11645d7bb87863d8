import t from 'tap'
import { DEFAULT_RECIPE } from '../../../src/cosa/recipe.js'
import { startEngine } from '../../engine.js'
import { configRepo, register, requireDocker, startApp, submit } from '../../helpers.js'

// The Docker engine stops in the middle of builds, on an engine of the
// test's own: the API stays up and says so in /readyz, running builds end
// `infrastructure`, queued ones wait, and all is well once it is back.

const SLOW = [['shell', '--', 'sleep', '120'], ['build', '{build-flags}']]

t.test('the engine stops and starts mid-build', async (t) => {
  if (!await requireDocker(t)) return
  const engine = await startEngine(t)
  // Not retried: this test is about the attempt the engine killed (test/engines/retries.test.ts has the retry).
  const h = await startApp(t, { docker: { socketPath: engine.socketPath, callTimeoutMs: 5000 }, builds: { maxConcurrent: 4, infrastructureRetries: 0 } })
  const repo = await configRepo(t)
  const config = { url: repo.url, ref: 'main' }
  await register(h, 'one', { config, recipe: SLOW })
  await register(h, 'two', { config, recipe: SLOW })
  await register(h, 'later', { config })
  const running = [await submit(h, 'one'), await submit(h, 'two')]
  for (const b of running) {
    const deadline = Date.now() + 60_000
    while (!(await h.app.inject({ url: `/v1/builds/${b.id}/log` })).body.includes('==> cosa shell')) {
      if (Date.now() > deadline) throw new Error('the build did not start')
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }

  await engine.stop()
  const ready = await h.app.inject({ url: '/readyz' })
  t.equal(ready.statusCode, 200, '/readyz keeps the instance in the load balancer: it serves everything but builds')
  t.equal(ready.json().status, 'degraded', 'and says it is degraded')
  t.equal(ready.json().checks.docker.ok, false)
  t.equal(ready.json().checks.database.ok, true)
  t.equal((await h.app.inject({ url: `/v1/builds/${running[0]!.id}` })).statusCode, 200, 'the API stays up')
  const queued = await submit(h, 'later')
  await new Promise((resolve) => setTimeout(resolve, 2500))
  t.match((await h.app.inject({ url: `/v1/builds/${queued.id}` })).json(), { state: 'queued', waitingFor: 'engine_unavailable' },
    'a new build waits for the engine, and says so')

  const back = Date.now()
  await engine.start()
  for (const b of running) {
    const done = await h.waitFor(b.id, ['succeeded', 'unchanged', 'failed', 'cancelled'], 60_000)
    t.equal(done.state, 'failed', 'a build the engine killed has failed')
    t.equal(done.reason, 'infrastructure', done.message)
    t.match(done.message, /the Docker engine stopped during the build/)
  }
  const recover = Date.now() - back
  t.comment(`running builds decided ${recover} ms after the engine came back`)
  const later = await h.waitFor(queued.id, ['succeeded', 'unchanged', 'failed', 'cancelled'], 120_000)
  t.equal(later.state, 'succeeded', `the queued build runs once the engine is back: ${later.message ?? ''}`)
  t.equal((await h.app.inject({ url: '/readyz' })).statusCode, 200)
  const left = await engine.docker('ps', '-aq', '--filter', 'label=io.cosa-buildd.build-id')
  t.equal(left.stdout.trim(), '', 'no container is left behind')
  const log = (await h.app.inject({ url: `/v1/builds/${running[0]!.id}/log` })).body
  t.match(log, /==> cosa shell -- sleep 120/, 'the log has what ran before the engine stopped')
  t.match(log, /build failed: the Docker engine stopped during the build/)
})

t.test('a service that starts while the engine is down picks up when it is back', async (t) => {
  if (!await requireDocker(t)) return
  const engine = await startEngine(t)
  const repo = await configRepo(t)
  await engine.stop()
  const h = await startApp(t, { docker: { socketPath: engine.socketPath, callTimeoutMs: 2000 } })
  await register(h, 'minimal', { config: { url: repo.url, ref: 'main' } })
  const build = await submit(h, 'minimal')
  await new Promise((resolve) => setTimeout(resolve, 1500))
  t.equal((await h.app.inject({ url: `/v1/builds/${build.id}` })).json().state, 'queued')
  await engine.start()
  const done = await h.waitFor(build.id, ['succeeded', 'failed'], 120_000)
  t.equal(done.state, 'succeeded', done.message ?? '')
})

t.test('with live-restore, builds outlive an engine restart and complete', async (t) => {
  if (!await requireDocker(t)) return
  const engine = await startEngine(t, { liveRestore: true })
  const h = await startApp(t, { docker: { socketPath: engine.socketPath, callTimeoutMs: 5000 } })
  const repo = await configRepo(t)
  const recipe = [['shell', '--', 'bash', '-c', 'for i in $(seq 1 12); do echo tick $i; sleep 1; done'], ...DEFAULT_RECIPE]
  await register(h, 'minimal', { config: { url: repo.url, ref: 'main' }, recipe })
  const build = await submit(h, 'minimal')
  const deadline = Date.now() + 60_000
  while (!(await h.app.inject({ url: `/v1/builds/${build.id}/log` })).body.includes('tick 2')) {
    if (Date.now() > deadline) throw new Error('the build did not start')
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  await engine.stop()
  await new Promise((resolve) => setTimeout(resolve, 3000))
  await engine.start()
  const done = await h.waitFor(build.id, ['succeeded', 'unchanged', 'failed', 'cancelled'], 120_000)
  t.equal(done.state, 'succeeded', `the build completes: ${done.message ?? ''}`)
  if (done.state !== 'succeeded') t.comment((await h.app.inject({ url: `/v1/builds/${build.id}/log` })).body)
  const log = (await h.app.inject({ url: `/v1/builds/${build.id}/log` })).body
  for (let i = 1; i <= 12; i++) {
    t.equal(log.split('\n').filter((l) => l === `tick ${i}`).length, 1, `tick ${i} is in the log exactly once`)
  }
})
