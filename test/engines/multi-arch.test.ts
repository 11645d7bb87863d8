import { execa } from 'execa'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { metaProblems } from '../../src/cosa/meta.js'
import { startEngine } from '../engine.js'
import { IMAGE, configRepo, register, requireDocker, startApp, submit } from '../helpers.js'

// A multi-arch build on real engines: the shared one (x86_64) and a dockerd
// of the test's own, reached over TCP with mutual TLS as a remote build host
// is, whose cosa-lite:latest is the arm64 image (it runs under qemu-user
// emulation here), registered as aarch64. The primary decides the build id;
// aarch64 builds the same id on its engine, in its own workdir (a volume
// there, copied back through the Docker API), and both end up in the store
// under that id, as cosa's multi-arch pipeline leaves them. The same inputs
// again: unchanged for both, and aarch64 is not run at all (its arch is in
// the build already).

t.setTimeout(20 * 60_000)

const ARM64_IMAGE = 'cosa-lite:latest-arm64'
const FINAL = ['succeeded', 'unchanged', 'failed', 'cancelled']

const seconds = (since: number) => ((performance.now() - since) / 1000).toFixed(1)

t.test('x86_64 and aarch64: one build id, both arches published, unchanged again for both', async (t) => {
  if (!await requireDocker(t)) return
  if ((await execa('docker', ['image', 'inspect', ARM64_IMAGE], { reject: false })).exitCode !== 0) {
    t.fail(`${ARM64_IMAGE} is missing: npm run image:cosa-lite -- --arch arm64`)
    return
  }
  const arm = await startEngine(t, { tls: true, images: [ARM64_IMAGE] })
  t.equal((await arm.docker('tag', ARM64_IMAGE, IMAGE)).exitCode, 0, 'the arm engine\'s cosa-lite:latest is the arm64 image')
  const { port, ca, cert, key } = arm.tls!
  const h = await startApp(t, {
    engines: [
      { name: 'local', host: 'unix:///var/run/docker.sock' },
      { name: 'arm', host: `tcp://127.0.0.1:${port}`, tls: { ca, cert, key }, arch: 'aarch64' }
    ],
    builds: { maxConcurrent: 2 }
  })
  const repo = await configRepo(t)
  await register(h, 'multi', { config: { url: repo.url, ref: 'main' }, arches: ['x86_64', 'aarch64'] })

  const started = performance.now()
  const first = await h.waitFor((await submit(h, 'multi')).id, FINAL, 15 * 60_000)
  t.comment(`a new build for x86_64 and aarch64 (emulated): ${seconds(started)} s; ` +
    first.arches?.map((a: any) => `${a.arch} ${((Date.parse(a.finishedAt) - Date.parse(a.startedAt)) / 1000).toFixed(1)} s`).join(', '))
  t.equal(first.state, 'succeeded', first.message ?? '')
  const id = first.result?.cosaBuildId
  t.match(first.arches, [
    { arch: 'x86_64', state: 'succeeded', engine: 'local', result: { cosaBuildId: id, arch: 'x86_64' } },
    { arch: 'aarch64', state: 'succeeded', engine: 'arm', result: { cosaBuildId: id, arch: 'aarch64' } }
  ], 'each arch: its state, engine and the one build id')
  t.match(first, { engine: 'arm', arch: 'aarch64' }, 'engine and arch name the last arch to run')

  await t.test('the store has builds/<id>/<arch>/ of both arches under one builds.json entry', async (t) => {
    const index = (await h.app.inject({ method: 'GET', url: '/v1/streams/multi/builds/builds.json' })).json()
    t.same(index.builds.map((b: any) => ({ id: b.id, arches: b.arches })), [{ id, arches: ['x86_64', 'aarch64'] }],
      'builds.json lists both arches for the id')
    for (const arch of ['x86_64', 'aarch64']) {
      const res = await h.app.inject({ method: 'GET', url: `/v1/streams/multi/builds/${id}/${arch}/meta.json` })
      t.equal(res.statusCode, 200, `builds/${id}/${arch}/meta.json is published`)
      const meta = res.json()
      t.same(metaProblems(meta), [], `${arch}'s meta.json is valid against cosa's schema`)
      t.equal(meta['coreos-assembler.basearch'], arch, `${arch}'s meta.json says coreos-assembler.basearch ${arch}`)
      t.equal(meta.buildid, id, `${arch}'s meta.json has the build id`)
      t.equal(meta.ref, `cosa-lite/${arch}/minimal`, 'the ref names the arch')
    }
    const qemu = first.arches[1].result.artifacts.find((a: any) => a.name === 'qemu')
    t.match(qemu?.url, `/v1/streams/multi/builds/${id}/aarch64/`, 'a secondary arch\'s artifact URL is in cosa\'s layout')
    const check = await execa('qemu-img', ['check', qemu.location], { reject: false, all: true })
    t.equal(check.exitCode, 0, `qemu-img check of the aarch64 disk: ${check.all}`)
    const download = await h.app.inject({ method: 'HEAD', url: qemu.url })
    t.equal(download.statusCode, 200, 'and it downloads')
    t.ok((await stat(join(h.dataDir, 'streams/multi/work-aarch64/builds', id, 'aarch64'))).isDirectory(),
      'the service\'s copy of aarch64\'s own workdir has its build')
    const volumes = (await arm.docker('volume', 'ls', '--format', '{{.Name}}')).stdout.split('\n')
    t.ok(volumes.some((v) => v.endsWith('-multi-aarch64')), `the arm engine keeps it in a volume of its own: ${volumes.join(' ')}`)
  })

  const again = performance.now()
  const second = await h.waitFor((await submit(h, 'multi')).id, FINAL, 10 * 60_000)
  t.comment(`the same inputs again: ${seconds(again)} s`)
  t.equal(second.state, 'unchanged', second.message ?? '')
  t.match(second.arches, [
    { arch: 'x86_64', state: 'unchanged', result: { cosaBuildId: id } },
    { arch: 'aarch64', state: 'unchanged', result: { cosaBuildId: id, arch: 'aarch64' } }
  ], 'unchanged for both arches')
  t.equal(second.engine, 'local', 'aarch64 was not run: the build has it already')
  const ps = await arm.docker('ps', '-aq', '--filter', 'label=io.cosa-buildd.build-id')
  t.equal(ps.stdout.trim(), '', 'no container left on the arm engine')

  await t.test('a build of an arch no engine serves waits, and starts once an engine of it is added through the API', async (t) => {
    // Another installation (its own data directory) that knows only the local engine.
    const other = await startApp(t)
    const registered = await other.app.inject({
      method: 'PUT', url: '/v1/streams/armonly', payload: { config: { url: repo.url, ref: 'main' }, arches: ['aarch64'] }
    })
    t.match(registered.json().warnings, [/^no engine serves aarch64/], 'registration warns')
    const build = await submit(other, 'armonly')
    let seen: any
    for (let i = 0; i < 100; i++) {
      seen = (await other.app.inject({ url: `/v1/builds/${build.id}` })).json()
      if (seen.waitingFor !== undefined) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    t.match(seen, { state: 'queued', waitingFor: 'no_engine_for_arch' }, 'it waits for an engine of its arch')
    const added = await other.app.inject({
      method: 'PUT', url: '/v1/engines/arm', payload: { host: `tcp://127.0.0.1:${port}`, tls: { ca, cert, key }, arch: 'aarch64' }
    })
    t.equal(added.statusCode, 201, added.statusCode === 201 ? 'an aarch64 engine added with PUT' : added.body)
    const done = await other.waitFor(build.id, FINAL, 10 * 60_000)
    t.match(done, { state: 'succeeded', engine: 'arm', arch: 'aarch64', result: { arch: 'aarch64' } }, done.message ?? 'built on the engine added')
  })

  await t.test('an arch no engine serves waits for one, and a cancel ends the build naming it', async (t) => {
    await register(h, 'nowhere', { config: { url: repo.url, ref: 'main' }, arches: ['x86_64', 's390x'] })
    const build = await submit(h, 'nowhere')
    const deadline = Date.now() + 5 * 60_000
    let seen: any
    while (Date.now() < deadline) {
      seen = (await h.app.inject({ method: 'GET', url: `/v1/builds/${build.id}` })).json()
      if (seen.arches?.[1]?.state === 'waiting' || FINAL.includes(seen.state)) break
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    t.match(seen, {
      state: 'running',
      arches: [{ arch: 'x86_64', state: 'succeeded' }, { arch: 's390x', state: 'waiting', waitingFor: 'no_engine_for_arch' }]
    }, 'x86_64 built; s390x waits for an engine')
    t.equal((await h.app.inject({ method: 'POST', url: `/v1/builds/${build.id}/cancel` })).statusCode, 200)
    const done = await h.waitFor(build.id, FINAL, 60_000)
    t.match(done, { state: 'cancelled', message: /^s390x: cancelled/, arches: [{ state: 'succeeded' }, { state: 'cancelled' }] },
      'cancelled, the waiting arch named')
  })
})
