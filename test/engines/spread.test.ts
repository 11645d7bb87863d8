import t from 'tap'
import { DEFAULT_RECIPE } from '../../src/cosa/recipe.js'
import { startEngine } from '../engine.js'
import { configRepo, register, requireDocker, startApp, submit } from '../helpers.js'

// Real builds on two real engines: the shared one and a dockerd of the
// test's own, both reached over Unix sockets (builds still bind-mount the
// data directory, so a TLS engine waits for remote workdirs). Two streams'
// builds spread over the engines; a stream's next build goes home; a
// drained home sends it to the other engine, where a fresh workdir synced
// from the store still finds the inputs unchanged, while the build running
// on the drained engine finishes there.

const FINAL = ['succeeded', 'unchanged', 'failed', 'cancelled']

t.test('builds spread over two engines, go home, and move when their home drains', async (t) => {
  if (!await requireDocker(t)) return
  const second = await startEngine(t)
  const h = await startApp(t, {
    engines: [
      { name: 'local', host: 'unix:///var/run/docker.sock' },
      { name: 'second', host: `unix://${second.socketPath}` }
    ],
    builds: { maxConcurrent: 4 }
  })
  const repo = await configRepo(t)
  for (const s of ['alpha', 'beta']) await register(h, s, { config: { url: repo.url, ref: 'main' } })

  const started = Date.now()
  const [a1, b1] = [await submit(h, 'alpha'), await submit(h, 'beta')]
  const [a1Done, b1Done] = await Promise.all([h.waitFor(a1.id, FINAL, 300_000), h.waitFor(b1.id, FINAL, 300_000)])
  t.comment(`two first builds on two engines at once: ${Date.now() - started} ms`)
  t.match(a1Done, { state: 'succeeded', engine: 'local', arch: 'x86_64' }, a1Done.message ?? '')
  t.match(b1Done, { state: 'succeeded', engine: 'second', arch: 'x86_64' }, b1Done.message ?? 'one build per engine (capacity 1): beta on the other')

  const a2 = await h.waitFor((await submit(h, 'alpha')).id, FINAL, 300_000)
  t.match(a2, { state: 'unchanged', engine: 'local' }, 'alpha\'s next build goes home')

  // A build running on local when it is drained: it finishes there.
  await register(h, 'slow', { config: { url: repo.url, ref: 'main' }, recipe: [DEFAULT_RECIPE[0]!, ['shell', '--', 'sleep', '10'], ...DEFAULT_RECIPE.slice(1)] })
  const slow = await submit(h, 'slow')
  for (let i = 0; i < 1200 && !(await h.app.inject({ url: `/v1/builds/${slow.id}/log` })).body.includes('==> cosa shell'); i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.match((await h.app.inject({ url: `/v1/builds/${slow.id}` })).json(), { state: 'running', engine: 'local' }, 'a slow build runs on local')
  t.equal((await h.app.inject({ method: 'POST', url: '/v1/engines/local/drain' })).statusCode, 200)
  const a3 = await h.waitFor((await submit(h, 'alpha')).id, FINAL, 300_000)
  t.match(a3, { state: 'unchanged', engine: 'second' }, 'home drained: alpha runs on second, its workdir synced from the store')
  const slowDone = await h.waitFor(slow.id, FINAL, 300_000)
  t.match(slowDone, { state: 'succeeded', engine: 'local' }, 'the build running when local was drained finished there')
  const ps = await second.docker('ps', '-aq', '--filter', 'label=io.cosa-buildd.build-id')
  t.equal(ps.stdout.trim(), '', 'no container left on the second engine')
})
