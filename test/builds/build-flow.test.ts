import Ajv from 'ajv'
import { execa } from 'execa'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { basearch } from '../../src/cosa/basearch.js'
import { metaSchema } from '../../src/cosa/meta.js'
import { configRepo, register, requireDocker, startApp, submit, vanishingImage } from '../helpers.js'

// Whole builds through the API, on the real engine with cosa-lite.

const validateMeta = new Ajv.default({ strict: false }).compile(metaSchema)
const SLOW = [['shell', '--', 'sleep', '300'], ['build', '{build-flags}']]

const containerExists = async (id: string) =>
  (await execa('docker', ['container', 'inspect', id], { reject: false })).exitCode === 0

t.test('a stream builds, then finds nothing changed, then builds again when forced', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t)
  const repo = await configRepo(t)
  await register(h, 'minimal', { config: { url: repo.url, ref: 'main' } })

  const first = await submit(h, 'minimal')
  t.equal(first.state, 'queued')
  const done = await h.waitFor(first.id, ['succeeded', 'failed'])
  t.equal(done.state, 'succeeded', `first build: ${done.message ?? ''}`)
  t.equal(done.configCommit, await repo.head(), 'the build records the config commit it built')
  const uname = (await execa('uname', ['-m'])).stdout.trim()
  t.match(done, { engine: 'local', arch: basearch(uname) }, 'and the engine (its default name) and arch that ran it')
  t.equal(done.result.arch, done.arch, 'the arch cosa built for is the engine\'s')
  t.match(done.result.cosaBuildId, /^1\.\d{8}\.dev\.0$/)
  t.same(done.result.artifacts.map((a: { name: string }) => a.name).sort(), ['ostree', 'qemu'])

  const metaRes = await h.app.inject({ method: 'GET', url: `/v1/builds/${first.id}/meta.json` })
  t.equal(metaRes.statusCode, 200)
  const workdir = join(h.dataDir, 'streams/minimal/work')
  const onDisk = await readFile(join(workdir, 'builds', done.result.cosaBuildId, 'x86_64/meta.json'), 'utf8')
  t.equal(metaRes.body, onDisk, 'meta.json is served verbatim')
  t.ok(validateMeta(JSON.parse(metaRes.body)), 'meta.json is valid against cosa\'s schema')
  // Published: the store (a directory by default) holds each image.
  for (const a of done.result.artifacts) {
    const bytes = await readFile(a.location)
    t.equal(createHash('sha256').update(bytes).digest('hex'), a.sha256, `${a.name} sha256 matches the stored file`)
    t.equal(bytes.length, a.size)
    t.equal(a.url, `/v1/builds/${first.id}/artifacts/${a.name}`)
  }
  const qcow2 = done.result.artifacts.find((a: { name: string }) => a.name === 'qemu')
  t.equal((await execa('qemu-img', ['check', qcow2.location], { reject: false })).exitCode, 0, 'qemu-img check')

  const log = await h.app.inject({ method: 'GET', url: `/v1/builds/${first.id}/log` })
  t.equal(log.headers['content-type'], 'text/plain; charset=utf-8')
  for (const step of ['cosa init', 'cosa fetch', 'cosa build', 'cosa osbuild qemu', 'build succeeded']) {
    t.match(log.body, step, `the log shows ${step}`)
  }
  t.notMatch(log.body, /\x1b/, 'no control sequences in the log')
  const tail = await h.app.inject({ method: 'GET', url: `/v1/builds/${first.id}/log?offset=${log.body.length - 20}` })
  t.equal(tail.body, log.body.slice(-20), 'the log resumes at a byte offset')
  t.notOk(await containerExists(done.containerId), 'the container is removed')

  const again = await h.waitFor((await submit(h, 'minimal')).id, ['unchanged', 'succeeded', 'failed'])
  t.equal(again.state, 'unchanged', 'the same inputs give unchanged')
  t.equal(again.result.cosaBuildId, done.result.cosaBuildId, 'unchanged points at the existing build')

  const forcedId = (await submit(h, 'minimal', { force: true })).id
  // Follow from the start: the answer ends only when the build has ended.
  const followed = await h.app.inject({ url: `/v1/builds/${forcedId}/log?follow=true` })
  t.match(followed.body, /==> cosa build --force\n[\s\S]*==> cosa-buildd: build succeeded\n$/, 'a follower sees the log to its end')
  const forced = await h.waitFor(forcedId, ['unchanged', 'succeeded', 'failed'])
  t.equal(forced.state, 'succeeded', 'force builds anyway')
  t.not(forced.result.cosaBuildId, done.result.cosaBuildId)

  await repo.commit('overlay.d/10-motd/usr/etc/motd', 'a new motd\n')
  const edited = await h.waitFor((await submit(h, 'minimal')).id, ['unchanged', 'succeeded', 'failed'])
  t.equal(edited.state, 'succeeded', 'a config change builds')
  t.equal(edited.configCommit, await repo.head())

  const stream = (await h.app.inject({ method: 'GET', url: '/v1/streams/minimal' })).json()
  t.equal(stream.latestBuild.id, edited.id, 'the stream shows its latest build')
})

t.test('streams run in parallel; one stream runs one build at a time', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t, { builds: { maxConcurrent: 2 } })
  const repo = await configRepo(t)
  const recipe = [['shell', '--', 'sleep', '2'], ['init', '--force', '{url}'], ['build', '{build-flags}']]
  await register(h, 'a', { config: { url: repo.url, ref: 'main' }, recipe })
  await register(h, 'b', { config: { url: repo.url, ref: 'main' }, recipe })
  const a1 = await submit(h, 'a')
  await h.waitFor(a1.id, ['running'])
  const a2 = await submit(h, 'a', { force: true })
  const b1 = await submit(h, 'b')
  t.equal(a2.state, 'queued', 'a second build of a stream waits while the first runs')
  t.equal(a2.queuePosition, 1)
  t.equal(a2.waitingFor, 'stream_busy', 'it waits for its own stream, not a slot')
  const [A1, A2, B1] = await Promise.all([a1, a2, b1].map((b) => h.waitFor(b.id, ['succeeded', 'failed', 'unchanged'])))
  for (const b of [A1, A2, B1]) t.equal(b.state, 'succeeded', `${b.stream}: ${b.message ?? ''}`)
  t.ok(Date.parse(A2.startedAt) >= Date.parse(A1.finishedAt), 'a2 started after a1 finished')
  t.ok(Date.parse(B1.startedAt) < Date.parse(A1.finishedAt) && Date.parse(A1.startedAt) < Date.parse(B1.finishedAt),
    'a1 and b1 overlapped')
})

t.test('cancel, timeout and failures end in the right state', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t, { builds: { maxConcurrent: 4, stopGraceSeconds: 2 } })
  const repo = await configRepo(t)
  const config = { url: repo.url, ref: 'main' }
  await register(h, 'slow', { config, recipe: SLOW })
  await register(h, 'short', { config, recipe: SLOW, timeoutSeconds: 2 })
  const gone = await vanishingImage(t, 'noimage')
  await register(h, 'noimage', { config, image: gone.tag })
  await gone.vanish()
  await register(h, 'broken', { config, recipe: [['shell', '--', 'false'], ['build']] })
  await register(h, 'liar', {
    config,
    recipe: [['init', '--force', '{url}'], ['build'], ['shell', '--', 'bash', '-c', 'echo {} > builds/latest/x86_64/meta.json']]
  })
  await register(h, 'badcommit', { config })

  const slow = await submit(h, 'slow')
  const running = await h.waitFor(slow.id, ['running'])
  for (let i = 0; i < 50 && !(await h.app.inject({ url: `/v1/builds/${slow.id}` })).json().containerId; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  const { containerId } = (await h.app.inject({ url: `/v1/builds/${slow.id}` })).json()
  t.ok(containerId, `${running.id} has a container`)
  const inspect = JSON.parse((await execa('docker', ['container', 'inspect', containerId])).stdout)[0]
  t.same(inspect.HostConfig.CapDrop, ['ALL'], 'capabilities dropped')
  t.ok(inspect.HostConfig.SecurityOpt.includes('no-new-privileges'))
  t.notOk(inspect.HostConfig.Privileged)
  t.ok(inspect.HostConfig.Memory > 0 && inspect.HostConfig.NanoCpus > 0 && inspect.HostConfig.PidsLimit > 0, 'limits set')
  t.equal(inspect.HostConfig.NetworkMode, 'none')
  t.notOk(JSON.stringify(inspect.Mounts).includes('docker.sock'), 'no Docker socket')
  t.equal(inspect.Config.Labels['io.cosa-buildd.build-id'], slow.id)

  const t0 = Date.now()
  const cancel = await h.app.inject({ method: 'POST', url: `/v1/builds/${slow.id}/cancel` })
  t.equal(cancel.statusCode, 200)
  const cancelled = await h.waitFor(slow.id, ['cancelled', 'failed', 'succeeded'])
  t.equal(cancelled.state, 'cancelled')
  t.ok(Date.now() - t0 < 15_000, 'cancel took less than 15 s')
  t.notOk(await containerExists(containerId), 'the cancelled build\'s container is gone')
  const twice = await h.app.inject({ method: 'POST', url: `/v1/builds/${slow.id}/cancel` })
  t.equal(twice.json().state, 'cancelled', 'cancel is idempotent')

  const timedOut = await h.waitFor((await submit(h, 'short')).id, ['failed', 'succeeded', 'cancelled'], 60_000)
  t.equal(timedOut.reason, 'timeout', 'the stream timeout fails the build')
  const noImage = await h.waitFor((await submit(h, 'noimage')).id, ['failed', 'succeeded'])
  t.equal(noImage.reason, 'image_unavailable')
  t.match(noImage.message, /cosa-buildd-test-vanishing-noimage:0 is not on the Docker engine/)
  const broken = await h.waitFor((await submit(h, 'broken')).id, ['failed', 'succeeded'])
  t.equal(broken.reason, 'exit_code')
  t.equal(broken.exitCode, 1)
  const liar = await h.waitFor((await submit(h, 'liar')).id, ['failed', 'succeeded'])
  t.equal(liar.reason, 'invalid_result', 'exit 0 with an invalid meta.json')
  t.match(liar.message, /schema/)
  const badCommit = await h.waitFor((await submit(h, 'badcommit', { commit: 'f'.repeat(40) })).id, ['failed', 'succeeded'])
  t.equal(badCommit.reason, 'config_unavailable')

  const queuedBehind = [await submit(h, 'slow'), await submit(h, 'slow')]
  const q = await h.app.inject({ method: 'POST', url: `/v1/builds/${queuedBehind[1].id}/cancel` })
  t.equal(q.json().state, 'cancelled', 'a queued build is cancelled at once')
})

t.test('the privileged profile, refused by this engine, fails the build and nothing else', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t, { builds: { securityProfile: 'privileged' } })
  const repo = await configRepo(t)
  await register(h, 'priv', { config: { url: repo.url, ref: 'main' } })
  const b = await h.waitFor((await submit(h, 'priv')).id, ['failed', 'succeeded'])
  if (b.state === 'failed') {
    t.equal(b.reason, 'infrastructure')
    t.match(b.message, /refused .* privileged security profile/)
  } else {
    t.pass('this engine allows privileged containers')
  }
  t.equal((await h.app.inject({ url: '/readyz' })).statusCode, 200, 'the service keeps running')
})

t.test('a restart adopts the running build and runs the queued one', async (t) => {
  if (!await requireDocker(t)) return
  const repo = await configRepo(t)
  const first = await startApp(t)
  const recipe = [['shell', '--', 'sleep', '3'], ['init', '--force', '{url}'], ['build', '{build-flags}']]
  await register(first, 'r', { config: { url: repo.url, ref: 'main' }, recipe })
  const running = await submit(first, 'r')
  const queued = await submit(first, 'r', { force: true })
  await first.waitFor(running.id, ['running'])
  await new Promise((resolve) => setTimeout(resolve, 1000))
  await first.app.close()

  const second = await startApp(t, { dataDir: first.dataDir })
  const a = await second.waitFor(running.id, ['succeeded', 'failed', 'unchanged', 'cancelled'])
  const b = await second.waitFor(queued.id, ['succeeded', 'failed', 'unchanged', 'cancelled'])
  t.equal(a.state, 'succeeded', `adopted build: ${a.message ?? ''}`)
  t.equal(b.state, 'succeeded', `queued build: ${b.message ?? ''}`)
  const log = (await second.app.inject({ url: `/v1/builds/${running.id}/log` })).body
  t.equal(log.match(/==> cosa build/g)?.length, 1, 'no duplicated log lines after the restart')
  const left = await execa('docker', ['ps', '-aq', '--filter', `label=io.cosa-buildd.stream=r`])
  t.equal(left.stdout.trim(), '', 'no container left')
})

t.test('an image that runs as a named user gets a workdir it owns', async (t) => {
  if (!await requireDocker(t)) return
  // Real cosa runs as uid 1000 `builder`; make such an image from cosa-lite.
  const image = 'cosa-lite-builder:test'
  const built = await execa('docker', ['build', '--network=none', '-q', '-t', image, '-'],
    { input: 'FROM cosa-lite:latest\nRUN useradd -u 1000 -m builder\nUSER builder\n', reject: false, all: true })
  t.equal(built.exitCode, 0, `docker build: ${built.all}`)
  t.teardown(() => execa('docker', ['rmi', '-f', image], { reject: false }))
  const h = await startApp(t)
  const repo = await configRepo(t)
  await register(h, 'builder', {
    config: { url: repo.url, ref: 'main' }, image, recipe: [['init', '--force', '{url}'], ['build', '{build-flags}']]
  })
  const b = await h.waitFor((await submit(h, 'builder')).id, ['succeeded', 'failed'])
  t.equal(b.state, 'succeeded', `as uid 1000: ${b.message ?? ''}`)
  const { stdout } = await execa('stat', ['-c', '%u:%g', join(h.dataDir, 'streams/builder/work/builds', b.result.cosaBuildId)])
  t.equal(stdout.trim(), '1000:1000', 'the build was written by uid 1000')
  const left = await execa('docker', ['ps', '-aq', '--filter', 'name=cosa-buildd-id-'])
  t.equal(left.stdout.trim(), '', 'the id lookup container is gone')
})
