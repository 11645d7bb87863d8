import { execa } from 'execa'
import t from 'tap'
import { DEFAULT_RECIPE } from '../../src/cosa/recipe.js'
import { startEngine } from '../engine.js'
import { configRepo, IMAGE, register, requireDocker, startApp, submit, tempDir } from '../helpers.js'
import { api, startServer, until } from '../server-process.js'
import { FAULT_RECIPE, waitForLog } from './faults.js'
import { assertComplete, layout, sha256sum, storedBuilds } from './store-check.js'

// A build is `succeeded` only when the store holds all of it. Each case makes
// a build fail after `cosa build` made its build directory (the image step,
// the container, the publish), then retries with nothing changed: the retry
// must make a complete build, not report the leftover as succeeded or
// unchanged.

const cases = [
  { fault: 'exit', expect: { state: 'failed', reason: 'exit_code' } },
  { fault: 'oom', expect: { state: 'failed', reason: 'oom' }, stream: { resources: { memoryBytes: 128 * 1024 ** 2 } } },
  { fault: 'hang', expect: { state: 'failed', reason: 'timeout' }, stream: { timeoutSeconds: 20 } },
  { fault: 'hang', expect: { state: 'cancelled' }, cancel: true },
  { fault: 'corrupt', expect: { state: 'failed', reason: 'publish_failed' } }
]

t.test('a retry after a failure past `cosa build` makes a complete build', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t, { builds: { maxConcurrent: cases.length, stopGraceSeconds: 1 } })
  t.jobs = cases.length
  for (const [i, c] of cases.entries()) {
    const name = `${c.fault}-${c.cancel ? 'cancel' : i}`
    t.test(name, async (t) => {
      const repo = await configRepo(t)
      await register(h, name, { config: { url: repo.url, ref: 'main' }, recipe: FAULT_RECIPE, ...c.stream })
      const faulty = async (body: Record<string, unknown>) => {
        await repo.commit('fault', c.fault)
        const bad = await submit(h, name, body)
        if (c.cancel) {
          await waitForLog(h, bad.id, 'hanging')
          await h.app.inject({ method: 'POST', url: `/v1/builds/${bad.id}/cancel` })
        }
        t.match(await h.waitFor(bad.id, ['succeeded', 'unchanged', 'failed', 'cancelled']), c.expect, `the faulty build: ${c.expect.state}`)
        await repo.commit('fault', 'none')
      }
      const build = async (body: Record<string, unknown> = {}) =>
        h.waitFor((await submit(h, name, body)).id, ['succeeded', 'unchanged', 'failed', 'cancelled'])

      // The stream's first build fails half-way: the store has nothing, and the retry builds anew.
      await faulty({})
      t.same((await storedBuilds(h, name)).ids, [], 'nothing published')
      const first = await build()
      await assertComplete(t, h, first, ['ostree', 'qemu'])

      // A forced build fails half-way: the store's build still stands for these inputs.
      await faulty({ force: true })
      t.same((await storedBuilds(h, name)).ids, [first.result.cosaBuildId], 'the store still has only the first build')
      t.match(await build(), { state: 'unchanged', result: { cosaBuildId: first.result.cosaBuildId } },
        'nothing changed since the first build: unchanged, pointing at it')
      const forced = await build({ force: true })
      await assertComplete(t, h, forced, ['ostree', 'qemu'])
      t.same((await storedBuilds(h, name)).ids, [forced.result.cosaBuildId, first.result.cosaBuildId], 'builds.json lists the two complete builds')
    })
  }
})

t.test('versions: what the API accepts, the stream can carry', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t)
  const repo = await configRepo(t)
  await register(h, 'v', { config: { url: repo.url, ref: 'main' } })
  const short = await h.waitFor((await submit(h, 'v', { version: 'v1' })).id, ['succeeded', 'failed'])
  t.match(short, { state: 'succeeded', result: { cosaBuildId: 'v1' } })
  // Every later build names its parent: a short id must not make its meta.json fail cosa's schema.
  const next = await h.waitFor((await submit(h, 'v', { force: true })).id, ['succeeded', 'failed'])
  await assertComplete(t, h, next, ['ostree', 'qemu'])
  const meta = (await layout(h, 'v', `${next.result.cosaBuildId}/x86_64/meta.json`)).json()
  t.equal(meta['fedora-coreos.parent-version'], undefined, 'no parent-version shorter than the schema allows')
  t.equal(meta['fedora-coreos.parent-commit'], short.result.ostreeCommit, 'the parent is still recorded by its commit')

  const again = await h.waitFor((await submit(h, 'v', { version: 'v1', force: true })).id, ['succeeded', 'failed'])
  t.match(again, { state: 'failed', reason: 'invalid_settings', message: /v1 is already in the artifact store/ })

  const long = 'x'.repeat(110)
  const built = await h.waitFor((await submit(h, 'v', { version: long, force: true })).id, ['succeeded', 'failed'])
  await assertComplete(t, h, built, ['ostree', 'qemu'])
  const served = await layout(h, 'v', `${long}/x86_64/meta.json`)
  t.equal(served.status, 200, 'a 110-character build id is served in cosa\'s layout')
  const qemu = built.result.artifacts.find((a: { name: string }) => a.name === 'qemu')
  t.equal((await layout(h, 'v', `${long}/x86_64/${qemu.path.split('/').at(-1)}`)).status, 200, 'and so is its image')
  t.equal((await h.app.inject({ url: `/v1/streams/v/builds/${'y'.repeat(300)}/x86_64/meta.json` })).statusCode, 400,
    'a segment longer than any file name is a 400, not a 414')
})

t.test('every file cosa writes in a build is published', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t)
  const repo = await configRepo(t)
  const lock = '{"packages":{"bash":{"evra":"5.2.15-2"}}}'
  await register(h, 'files', {
    config: { url: repo.url, ref: 'main' },
    recipe: [...DEFAULT_RECIPE, ['shell', '--', 'bash', '-c',
      `echo '${lock}' > builds/latest/x86_64/manifest-lock.generated.x86_64.json; echo shared > builds/latest/build-level.txt; ` +
      'ln -s /etc/shadow builds/latest/x86_64/planted; mkdir builds/latest/x86_64/subdir; touch builds/latest/x86_64/.qemu.building']]
  })
  const build = await h.waitFor((await submit(h, 'files')).id, ['succeeded', 'failed'])
  await assertComplete(t, h, build, ['ostree', 'qemu'])
  const id = build.result.cosaBuildId
  const paths = build.result.files.map((f: { path: string }) => f.path).sort()
  t.same(paths.filter((p: string) => !/\.(qcow2|tar)$/.test(p)), [
    `builds/${id}/build-level.txt`,
    `builds/${id}/x86_64/commitmeta.json`,
    `builds/${id}/x86_64/manifest-lock.generated.x86_64.json`,
    `builds/${id}/x86_64/meta.json`,
    `builds/${id}/x86_64/ostree-commit-object`
  ], 'regular files only: no symlink, directory or hidden semaphore')
  for (const file of build.result.files) {
    const served = await layout(h, 'files', file.path.replace(/^builds\//, ''))
    t.equal(served.status, 200, `${file.path} is served`)
    t.equal(await sha256sum(served.body), file.sha256, `${file.path}: sha256sum matches the recorded sha256`)
    t.equal(served.body.length, file.size)
  }
  t.equal((await layout(h, 'files', `${id}/x86_64/manifest-lock.generated.x86_64.json`)).body.toString(), lock + '\n')
  t.equal((await layout(h, 'files', `${id}/x86_64/planted`)).status, 404, 'a planted symlink is not followed')
})

t.test('a stream\'s settings are checked against the engine, and are never an infrastructure failure', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t)
  const repo = await configRepo(t)
  const config = { url: repo.url, ref: 'main' }
  const put = (body: Record<string, unknown>) => h.app.inject({ method: 'PUT', url: '/v1/streams/fit', payload: { config, ...body } })
  const cpus = await put({ resources: { cpus: 512 } })
  t.equal(cpus.statusCode, 422)
  t.match(cpus.json(), { code: 'BLD_STREAM_UNFIT', message: /body\/resources\.cpus: 512 is more than the \d+ CPUs of the Docker engine/ })
  t.match((await put({ resources: { memoryBytes: 2 ** 50 } })).json(), { code: 'BLD_STREAM_UNFIT', message: /body\/resources\.memoryBytes: .* GiB is more than/ })
  t.match((await put({ image: 'cosa-buildd-test-absent:0' })).json(), { code: 'BLD_STREAM_UNFIT', message: /body\/image: cosa-buildd-test-absent:0 is not on the Docker engine/ })
  t.equal((await put({})).statusCode, 201, 'what fits registers')

  // The engine shrinks after registration (another engine, fewer CPUs): the build says whose fault it is.
  const stream = await h.app.core.store.streams.getStream('fit')
  await h.app.core.store.streams.putStream({ ...stream!, resources: { cpus: 512 } })
  const build = await h.waitFor((await submit(h, 'fit')).id, ['succeeded', 'failed'])
  t.match(build, { state: 'failed', reason: 'invalid_settings', message: /resources\.cpus: 512 is more than/ })
})

t.test('an engine restart during the image step, then a retry', async (t) => {
  if (!await requireDocker(t)) return
  const engine = await startEngine(t)
  // Not retried automatically: the retry here is a new build, of a fixed commit.
  const h = await startApp(t, { docker: { socketPath: engine.socketPath, callTimeoutMs: 5000 }, builds: { stopGraceSeconds: 1, infrastructureRetries: 0 } })
  const repo = await configRepo(t)
  await register(h, 'engine', { config: { url: repo.url, ref: 'main' }, image: IMAGE, recipe: FAULT_RECIPE })
  await repo.commit('fault', 'hang')
  const bad = await submit(h, 'engine')
  await waitForLog(h, bad.id, 'hanging')
  await engine.stop()
  await engine.start()
  t.match(await h.waitFor(bad.id, ['succeeded', 'unchanged', 'failed', 'cancelled']), { state: 'failed', reason: 'infrastructure' })
  await repo.commit('fault', 'none')
  const retry = await h.waitFor((await submit(h, 'engine')).id, ['succeeded', 'unchanged', 'failed', 'cancelled'])
  await assertComplete(t, h, retry, ['ostree', 'qemu'])
  t.match((await h.app.inject({ url: `/v1/builds/${retry.id}/log` })).body, /removed unpublished builds from the workdir: /)
})

t.test('the service SIGKILLed while a build dies half-way, then a retry', async (t) => {
  if (!await requireDocker(t)) return
  const dataDir = await tempDir(t, 'cosa-kill-')
  const repo = await configRepo(t)
  let server = await startServer(t, dataDir, 1)
  const put = await api(server, '/v1/streams/killed', { method: 'PUT', body: { config: { url: repo.url, ref: 'main' }, recipe: FAULT_RECIPE } })
  t.equal(put.status, 201)
  await repo.commit('fault', 'hang')
  const bad = (await api(server, '/v1/streams/killed/builds', { method: 'POST', body: {} })).json()
  await until('the hang', 120_000, async () => (await api(server, `/v1/builds/${bad.id}/log`)).text.includes('hanging'))
  server.child.kill('SIGKILL')
  await server.exited
  // While no service watches, the container dies after `cosa build` made its build.
  await execa('docker', ['kill', `cosa-buildd-${bad.id}`])
  server = await startServer(t, dataDir, 1)
  const decided = await until('the killed build', 60_000, async () => {
    const b = (await api(server, `/v1/builds/${bad.id}`)).json()
    return b.state !== 'running' && b
  })
  t.match(decided, { state: 'failed', reason: 'exit_code', exitCode: 137 })
  await repo.commit('fault', 'none')
  const retry = (await api(server, '/v1/streams/killed/builds', { method: 'POST', body: {} })).json()
  const done = await until('the retry', 120_000, async () => {
    const b = (await api(server, `/v1/builds/${retry.id}`)).json()
    return ['succeeded', 'unchanged', 'failed'].includes(b.state) && b
  })
  t.equal(done.state, 'succeeded', done.message ?? '')
  t.same(done.result.artifacts.map((a: { name: string }) => a.name).sort(), ['ostree', 'qemu'])
  const index = (await api(server, '/v1/streams/killed/builds/builds.json')).json()
  t.same(index.builds.map((b: { id: string }) => b.id), [done.result.cosaBuildId], 'the store lists the complete build alone')
  const qemu = done.result.artifacts.find((a: { name: string }) => a.name === 'qemu')
  const bytes = Buffer.from(await (await fetch(server.url + qemu.url)).arrayBuffer())
  t.equal(await sha256sum(bytes), qemu.sha256, 'sha256sum of the downloaded qcow2 matches')
})
