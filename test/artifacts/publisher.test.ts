import { execa } from 'execa'
import { createHash } from 'node:crypto'
import { readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { LocalStore } from '../../src/artifacts/local-store.js'
import { buildOnce, configRepo, register, requireDocker, startApp, tempDir, type TestApp } from '../helpers.js'

// Publishing to the local store, end to end on the real engine: downloads,
// cosa's layout as `cosa buildfetch --url` reads it, change detection from
// the store alone, and retention.

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')

async function listen (h: TestApp) {
  await h.app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = h.app.server.address() as { port: number }
  return `http://127.0.0.1:${port}`
}

t.test('a published build downloads whole, in ranges, and through cosa\'s layout', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t)
  const repo = await configRepo(t)
  await register(h, 'minimal', { config: { url: repo.url, ref: 'main' } })
  const build = await buildOnce(h, 'minimal')
  t.equal(build.state, 'succeeded', build.message ?? '')
  const base = await listen(h)

  for (const a of build.result.artifacts) {
    const res = await fetch(base + a.url)
    t.equal(res.status, 200, `GET ${a.name}`)
    const bytes = Buffer.from(await res.arrayBuffer())
    t.equal(sha256(bytes), a.sha256, `${a.name}: the downloaded bytes have meta.json's sha256`)
    t.equal(res.headers.get('etag'), `"${a.sha256}"`)
    t.equal(res.headers.get('content-length'), String(a.size))
    t.match(res.headers.get('content-disposition'), /^attachment; filename="[^"/]+"$/)
    t.equal(res.headers.get('x-content-type-options'), 'nosniff')

    const head = await fetch(base + a.url, { method: 'HEAD' })
    t.equal(head.status, 200, 'HEAD')
    t.equal(head.headers.get('content-length'), String(a.size), 'HEAD gives the length')
    t.equal((await head.arrayBuffer()).byteLength, 0, 'and no body')

    const part = await fetch(base + a.url, { headers: { range: 'bytes=100-1123' } })
    t.equal(part.status, 206, 'a range')
    t.equal(part.headers.get('content-range'), `bytes 100-1123/${a.size}`)
    t.same(Buffer.from(await part.arrayBuffer()), bytes.subarray(100, 1124), 'exactly those bytes')
    const tail = await fetch(base + a.url, { headers: { range: 'bytes=-10' } })
    t.same(Buffer.from(await tail.arrayBuffer()), bytes.subarray(-10), 'a suffix range')
    const beyond = await fetch(base + a.url, { headers: { range: `bytes=${a.size}-` } })
    t.equal(beyond.status, 416, 'a range past the end')
    t.equal(beyond.headers.get('content-range'), `bytes */${a.size}`)
    t.equal((await beyond.json() as any).code, 'BLD_RANGE_NOT_SATISFIABLE')
    const cached = await fetch(base + a.url, { headers: { 'if-none-match': `"${a.sha256}"` } })
    t.equal(cached.status, 304, 'If-None-Match')
  }
  // curl resumes a cut download with a range and checks the result.
  const qcow2 = build.result.artifacts.find((a: { name: string }) => a.name === 'qemu')
  const dir = await tempDir(t)
  const out = join(dir, 'image.qcow2')
  const full = Buffer.from(await (await fetch(base + qcow2.url)).arrayBuffer())
  await writeFile(out, full.subarray(0, 4096))
  await execa('curl', ['-sS', '--fail', '-C', '-', '-o', out, base + qcow2.url])
  t.equal(sha256(await readFile(out)), qcow2.sha256, 'curl -C - completes a partial download')
  t.equal((await execa('qemu-img', ['check', out], { reject: false })).exitCode, 0, 'qemu-img check of the download')

  const missing = await fetch(`${base}/v1/builds/${build.id}/artifacts/metal`)
  t.equal(missing.status, 404)
  t.match((await missing.json() as any).message, /no artifact "metal" \(it has: .*ostree/)

  // What `cosa buildfetch --url <base>/v1/streams/minimal/builds` reads.
  const layout = `${base}/v1/streams/minimal/builds`
  const index = await (await fetch(`${layout}/builds.json`)).json() as any
  t.same(Object.keys(index).sort(), ['builds', 'schema-version', 'timestamp'])
  t.equal(index['schema-version'], '1.0.0')
  t.same(index.builds, [{ id: build.result.cosaBuildId, arches: ['x86_64'] }])
  t.match(index.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
  const { id, arches: [arch] } = index.builds[0]
  const meta = await fetch(`${layout}/${id}/${arch}/meta.json`)
  t.equal(meta.status, 200)
  const metaText = await meta.text()
  t.equal(metaText, (await h.app.inject({ url: `/v1/builds/${build.id}/meta.json` })).body, 'the stored meta.json is verbatim')
  const parsed = JSON.parse(metaText)
  for (const file of ['commitmeta.json', 'ostree-commit-object']) {
    t.equal((await fetch(`${layout}/${id}/${arch}/${file}`)).status, 200, `${file} is published`)
  }
  const ostreeTar = Buffer.from(await (await fetch(`${layout}/${id}/${arch}/${parsed.images.ostree.path}`)).arrayBuffer())
  t.equal(sha256(ostreeTar), parsed.images.ostree.sha256, 'an image read by the layout has meta.json\'s sha256')

  // The published commit is a real OSTree commit: fsck it with ostree itself.
  const repoDir = join(dir, 'repo')
  await writeFile(join(dir, 'ostree.tar'), ostreeTar)
  await execa('mkdir', ['-p', repoDir])
  await execa('tar', ['-xf', join(dir, 'ostree.tar'), '-C', repoDir])
  t.equal((await execa('ostree', ['fsck', `--repo=${repoDir}`], { reject: false })).exitCode, 0, 'ostree fsck')
  const commitObject = await readFile(join(repoDir, 'objects', parsed['ostree-commit'].slice(0, 2), `${parsed['ostree-commit'].slice(2)}.commit`))
  t.same(Buffer.from(await (await fetch(`${layout}/${id}/${arch}/ostree-commit-object`)).arrayBuffer()), commitObject,
    'ostree-commit-object is the commit\'s object')
})

t.test('change detection holds across a wiped workdir: the store is enough', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t)
  const repo = await configRepo(t)
  await register(h, 'minimal', { config: { url: repo.url, ref: 'main' } })
  const first = await buildOnce(h, 'minimal')
  t.equal(first.state, 'succeeded', first.message ?? '')
  const workdir = join(h.dataDir, 'streams/minimal/work')

  await rm(workdir, { recursive: true, force: true })
  const again = await buildOnce(h, 'minimal')
  t.equal(again.state, 'unchanged', `a fresh workdir finds nothing changed: ${again.message ?? ''}`)
  t.equal(again.result.cosaBuildId, first.result.cosaBuildId, 'and points at the published build')
  t.same(await readdir(join(workdir, 'builds', first.result.cosaBuildId, 'x86_64')).then((f) => f.sort()),
    ['commitmeta.json', 'meta.json', 'ostree-commit-object'], 'only the metadata was synced, not the images')
  const log = (await h.app.inject({ url: `/v1/builds/${again.id}/log` })).body
  t.match(log, `workdir synced from the artifact store: builds/latest is ${first.result.cosaBuildId}`)
  const download = await h.app.inject({ url: again.result.artifacts[0].url })
  t.equal(download.statusCode, 200, 'an unchanged build\'s artifacts download from the store')

  await rm(workdir, { recursive: true, force: true })
  const forced = await buildOnce(h, 'minimal', { force: true })
  t.equal(forced.state, 'succeeded', 'force builds anyway')
  t.not(forced.result.cosaBuildId, first.result.cosaBuildId)
  t.match(forced.result.cosaBuildId, /\.dev\.1$/, 'the id continues from the store\'s builds.json')
  // The synced commit object made the previous build's commit the parent.
  const tar = (await h.app.inject({ url: forced.result.artifacts.find((a: { name: string }) => a.name === 'ostree').url })).rawPayload
  const scratch = await tempDir(t)
  await writeFile(join(scratch, 'ostree.tar'), tar)
  await execa('tar', ['-xf', join(scratch, 'ostree.tar'), '-C', scratch])
  const parent = await execa('ostree', ['rev-parse', `--repo=${scratch}`, `${forced.result.ostreeCommit}^`], { reject: false })
  t.equal(parent.stdout.trim(), first.result.ostreeCommit, 'the new commit\'s parent is the published one')

  await rm(workdir, { recursive: true, force: true })
  await repo.commit('overlay.d/10-motd/usr/etc/motd', 'changed\n')
  const changed = await buildOnce(h, 'minimal')
  t.equal(changed.state, 'succeeded', 'a config change builds')
  t.not(changed.result.cosaBuildId, forced.result.cosaBuildId)

  const index = (await h.app.inject({ url: '/v1/streams/minimal/builds/builds.json' })).json()
  t.same(index.builds.map((b: { id: string }) => b.id),
    [changed.result.cosaBuildId, forced.result.cosaBuildId, first.result.cosaBuildId], 'newest first')
})

t.test('retention keeps `keep` builds plus pinned ones, never the latest', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t)
  const repo = await configRepo(t)
  await register(h, 'minimal', { config: { url: repo.url, ref: 'main' }, keep: 2 })
  const first = await buildOnce(h, 'minimal')
  const unpinnedTag = (await h.app.inject({ url: `/v1/builds/${first.id}` })).headers.etag
  const pin = await h.app.inject({ method: 'PUT', url: `/v1/builds/${first.id}/pin` })
  t.equal(pin.statusCode, 200)
  t.equal(pin.json().pinned, true)
  // A finished build is answered from memory: the pin must still show, with a new entity tag.
  const polled = await h.app.inject({ url: `/v1/builds/${first.id}`, headers: { 'if-none-match': unpinnedTag as string } })
  t.equal(polled.statusCode, 200, 'a poll with the tag from before the pin gets the new answer')
  t.equal(polled.json().pinned, true)
  const second = await buildOnce(h, 'minimal', { force: true })
  const third = await buildOnce(h, 'minimal', { force: true })
  const fourth = await buildOnce(h, 'minimal', { force: true })
  for (const b of [first, second, third, fourth]) t.equal(b.state, 'succeeded', b.message ?? '')
  const ids = (b: any) => b.result.cosaBuildId

  const index = (await h.app.inject({ url: '/v1/streams/minimal/builds/builds.json' })).json()
  t.same(index.builds.map((b: { id: string }) => b.id), [ids(fourth), ids(third), ids(first)],
    'keep=2: the two newest and the pinned one')
  const gone = await h.app.inject({ url: second.result.artifacts[0].url })
  t.equal(gone.statusCode, 410, 'a pruned build\'s artifact is gone')
  t.equal(gone.json().code, 'BLD_ARTIFACT_PRUNED')
  const store = join(h.dataDir, 'store/minimal/builds')
  t.same((await readdir(store)).filter((f) => !f.endsWith('.json')).sort(), [ids(first), ids(third), ids(fourth)].sort(),
    'its files went with its entry')
  t.match((await h.app.inject({ url: `/v1/builds/${fourth.id}/log` })).body, `retention pruned ${ids(second)}`)

  // Unpinned, the old build goes at the next publish; keep=1 never takes the latest.
  t.equal((await h.app.inject({ method: 'DELETE', url: `/v1/builds/${first.id}/pin` })).json().pinned, false)
  t.equal((await h.app.inject({ url: `/v1/builds/${first.id}` })).json().pinned, false, 'and so does the unpin')
  await h.app.inject({ method: 'PUT', url: '/v1/streams/minimal', payload: { config: { url: repo.url, ref: 'main' }, keep: 1 } })
  const fifth = await buildOnce(h, 'minimal', { force: true })
  const after = (await h.app.inject({ url: '/v1/streams/minimal/builds/builds.json' })).json()
  t.same(after.builds.map((b: { id: string }) => b.id), [ids(fifth)], 'keep=1 keeps the latest alone')

  const queued = await h.app.inject({ method: 'PUT', url: '/v1/builds/01ARZ3NDEKTSV4RRFFQ69G5FAV/pin' })
  t.equal(queued.statusCode, 404)
})

t.test('retention never prunes a build builds.json tags, and keeps the tag', async (t) => {
  if (!await requireDocker(t)) return
  const h = await startApp(t)
  const repo = await configRepo(t)
  await register(h, 'tagged', { config: { url: repo.url, ref: 'main' }, keep: 1 })
  const first = await buildOnce(h, 'tagged')
  // As `cosa tag update` leaves it in the bucket.
  const store = new LocalStore(join(h.dataDir, 'store'))
  const index = JSON.parse((await store.getBytes('tagged/builds/builds.json'))!.toString())
  const tag = { name: 'golden', target: first.result.cosaBuildId, created: '2026-11-30T00:00:00Z' }
  await store.putBytes('tagged/builds/builds.json', Buffer.from(JSON.stringify({ ...index, tags: [tag] })), 'application/json')
  const second = await buildOnce(h, 'tagged', { force: true })
  const third = await buildOnce(h, 'tagged', { force: true })
  const after = (await h.app.inject({ url: '/v1/streams/tagged/builds/builds.json' })).json()
  t.same(after.builds.map((b: { id: string }) => b.id), [third.result.cosaBuildId, first.result.cosaBuildId],
    'keep=1: the latest, and the tagged build beside it')
  t.same(after.tags, [tag], 'the tag is kept, pointing at a build that exists')
  t.equal((await h.app.inject({ url: first.result.artifacts[0].url })).statusCode, 200, 'the tagged build\'s files stay')
  t.equal((await h.app.inject({ url: second.result.artifacts[0].url })).statusCode, 410, 'the untagged one went')
})
