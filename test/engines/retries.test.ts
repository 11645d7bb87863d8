import t, { type Test } from 'tap'
import { DEFAULT_RECIPE } from '../../src/cosa/recipe.js'
import { startEngine } from '../engine.js'
import { configRepo, register, requireDocker, startApp, submit, type TestApp } from '../helpers.js'

// Real builds on dockerd instances of the test's own, one of which is
// stopped in the middle of a build (dockerd stops its containers, then goes
// away): the attempt ends `infrastructure`, and the build, queued again,
// succeeds on the other engine, with both attempts shown by the API. With
// builds.infrastructureRetries 0 the first such failure is the build's.

const FINAL = ['succeeded', 'unchanged', 'failed', 'cancelled']
// A pause long enough to stop the engine in it; short, as the retry pauses too.
const SLOW = [DEFAULT_RECIPE[0]!, ['shell', '--', 'sleep', '15'], ...DEFAULT_RECIPE.slice(1)]

async function waitForLog (h: TestApp, id: string, text: string, ms = 120_000) {
  for (const deadline = Date.now() + ms; ;) {
    if ((await h.app.inject({ url: `/v1/builds/${id}/log` })).body.includes(text)) return
    if (Date.now() > deadline) throw new Error(`the log of ${id} never showed ${text}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** The build once `ok` holds of it (polled every 100 ms). */
async function until (h: TestApp, id: string, ok: (build: any) => boolean, ms = 120_000) {
  for (const deadline = Date.now() + ms; ;) {
    const build = (await h.app.inject({ url: `/v1/builds/${id}` })).json()
    if (ok(build)) return build
    if (Date.now() > deadline) throw new Error(`build ${id} is still ${build.state}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** An app on these engines (by name) and a build of SLOW on it, once its pause has begun. */
async function slowBuildOn (t: Test, engines: Record<string, { socketPath: string }>, builds: Record<string, unknown>) {
  const h = await startApp(t, {
    engines: Object.entries(engines).map(([name, e]) => ({ name, host: `unix://${e.socketPath}` })),
    docker: { callTimeoutMs: 5000 },
    builds
  })
  const repo = await configRepo(t)
  await register(h, 's', { config: { url: repo.url, ref: 'main' }, recipe: SLOW })
  const build = await submit(h, 's')
  await waitForLog(h, build.id, '==> cosa shell')
  return { h, build }
}

t.test('the engine running a build stops: the attempt ends infrastructure and the retry succeeds on the other engine', async (t) => {
  if (!await requireDocker(t)) return
  const first = await startEngine(t)
  const second = await startEngine(t)
  const { h, build } = await slowBuildOn(t, { first, second }, { maxConcurrent: 2 })
  const running = (await h.app.inject({ url: `/v1/builds/${build.id}` })).json()
  t.match(running, { state: 'running', engine: 'first' }, 'both engines idle: the first by name')
  const stoppedAt = Date.now()
  await first.stop()

  const requeued = await until(h, build.id, (b) => (b.attempts?.length ?? 0) >= 1)
  const endedAfter = Date.parse(requeued.attempts[0].endedAt) - stoppedAt
  t.comment(`the attempt ended ${endedAfter} ms after the engine was stopped`)
  // Back while the build is retried elsewhere: its earlier attempt's container goes.
  await first.start()

  const done = await h.waitFor(build.id, FINAL, 300_000)
  t.comment(`the build ${done.state} ${Date.now() - stoppedAt} ms after the engine was stopped`)
  t.match(done, { state: 'succeeded', engine: 'second' }, done.message ?? '')
  t.equal(done.attempts?.length, 2, 'the API shows both attempts')
  t.match(done.attempts[0], { engine: 'first', arch: 'x86_64', state: 'failed', reason: 'infrastructure', message: /the Docker engine stopped during the build/ })
  t.match(done.attempts[1], { engine: 'second', state: 'succeeded' })
  t.equal(done.attempts[1].startedAt, done.startedAt)

  const log = (await h.app.inject({ url: `/v1/builds/${build.id}/log` })).body
  t.match(log, /attempt 1 failed \(infrastructure: the Docker engine stopped during the build/)
  t.match(log, /engine second \(x86_64\)/, 'the retry says where it runs')
  t.notMatch(log, /was lost: the Docker engine rotated/, 'the second attempt\'s log is not taken for output lost')
  t.equal(log.match(/==> cosa shell -- sleep 15/g)?.length, 2, 'each attempt\'s output is in the log')

  for (const [name, engine] of [['first', first], ['second', second]] as const) {
    for (let i = 0; ; i++) {
      const left = (await engine.docker('ps', '-aq', '--filter', 'label=io.cosa-buildd.build-id')).stdout.trim()
      if (!left) break
      if (i === 100) {
        t.fail(`containers left on ${name}: ${left}`)
        break
      }
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
  t.pass('no container is left on either engine')
})

t.test('with infrastructureRetries 0 the first infrastructure failure is the build\'s', async (t) => {
  if (!await requireDocker(t)) return
  const only = await startEngine(t)
  const { h, build } = await slowBuildOn(t, { only }, { infrastructureRetries: 0 })
  const stoppedAt = Date.now()
  await only.stop()
  const done = await h.waitFor(build.id, FINAL, 120_000)
  t.comment(`failed ${Date.now() - stoppedAt} ms after the engine was stopped`)
  t.match(done, { state: 'failed', reason: 'infrastructure', engine: 'only' }, done.message ?? '')
  t.equal(done.attempts?.length, 1, 'one attempt')
  await only.start()
})
