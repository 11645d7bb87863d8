import { createHash } from 'node:crypto'
import { lstat, mkdir, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import pino from 'pino'
import t, { type Test } from 'tap'
import { LocalStore } from '../../src/artifacts/local-store.js'
import { PublishError, Publisher } from '../../src/artifacts/publisher.js'
import { SpaceGuard } from '../../src/artifacts/space-guard.js'
import { syncWorkdir } from '../../src/artifacts/workdir-sync.js'
import type { Meta } from '../../src/cosa/meta.js'
import { tempDir } from '../helpers.js'

// The publisher and the pre-build sync on a fabricated cosa workdir: what
// they copy, and what a hostile build container could plant for them.

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')

async function setup (t: Test) {
  const dir = await tempDir(t)
  const store = new LocalStore(join(dir, 'store'))
  const publisher = new Publisher({
    store,
    guard: new SpaceGuard({ dataDir: dir, store, minFreeBytes: 0 }),
    logger: pino({ level: 'silent' }),
    now: () => new Date('2026-11-26T00:00:00Z')
  })
  return { dir, store, publisher }
}

/** Writes builds/<id>/x86_64 as cosa would and returns the publish input. */
async function cosaBuild (workdir: string, id: string, extra: Record<string, string> = {}) {
  const dir = join(workdir, 'builds', id, 'x86_64')
  await mkdir(dir, { recursive: true })
  const image = `image-${id}.qcow2`
  await writeFile(join(dir, image), `qcow2 of ${id}`)
  await writeFile(join(dir, 'commitmeta.json'), `{"version":"${id}"}`)
  await writeFile(join(dir, 'ostree-commit-object'), `commit ${id}`)
  for (const [file, content] of Object.entries(extra)) await writeFile(join(dir, file), content)
  const meta = { buildid: id, images: { qemu: { path: image, sha256: sha(`qcow2 of ${id}`), size: `qcow2 of ${id}`.length } } }
  const metaJson = JSON.stringify(meta)
  await writeFile(join(dir, 'meta.json'), metaJson)
  return { stream: 's', buildId: 'B', workdir, arch: 'x86_64', meta: meta as unknown as Meta, metaJson, keep: 10, pinned: new Set<string>() }
}

t.test('publish, then sync into a fresh workdir', async (t) => {
  const { dir, store, publisher } = await setup(t)
  const work = join(dir, 'work')
  const out = await publisher.publish(await cosaBuild(work, '1.0'))
  t.equal(out.stored, true)
  t.same(out.artifacts.map((a) => [a.name, a.url, a.location]),
    [['qemu', '/v1/builds/B/artifacts/qemu', store.location('s/builds/1.0/x86_64/image-1.0.qcow2')]])
  await t.rejects(lstat(join(work, 'builds/1.0/x86_64/image-1.0.qcow2')), 'a linked image leaves the workdir')
  t.same(JSON.parse((await store.getBytes('s/builds/builds.json'))!.toString()).builds, [{ id: '1.0', arches: ['x86_64'] }])
  const again = await publisher.publish(await cosaBuild(work, '1.0'))
  t.equal(again.stored, false, 'publishing the same build again stores nothing')

  const fresh = join(dir, 'fresh')
  await mkdir(fresh)
  const published = new Set(['1.0'])
  t.match(await syncWorkdir(publisher, 's', fresh, 'x86_64'), { synced: '1.0', removed: [], published, latest: { buildid: '1.0' } })
  t.same((await syncWorkdir(publisher, 's', fresh, 'x86_64')).workspace, {
    paths: ['builds/builds.json', 'builds/latest', 'builds/1.0/x86_64/meta.json', 'builds/1.0/x86_64/commitmeta.json', 'builds/1.0/x86_64/ostree-commit-object'],
    prune: { dir: 'builds', keep: ['1.0'] }
  }, 'what an engine\'s own copy of the workdir is given, also when this one was in step already')
  t.equal(await readlink(join(fresh, 'builds/latest')), '1.0')
  t.same((await readdir(join(fresh, 'builds/1.0/x86_64'))).sort(), ['commitmeta.json', 'meta.json', 'ostree-commit-object'])
  t.equal(await readFile(join(fresh, 'builds/builds.json'), 'utf8'), (await store.getBytes('s/builds/builds.json'))!.toString())
  const inStep = await syncWorkdir(publisher, 's', fresh, 'x86_64')
  t.same([inStep.synced, inStep.removed, inStep.latest?.buildid], [undefined, [], '1.0'], 'in step: nothing to do')

  // A build that never reached the store (its image step, publish or
  // container failed) would pass for "unchanged" or shadow its id: it goes,
  // even while builds/latest still matches the store.
  await cosaBuild(fresh, '1.1')
  t.match(await syncWorkdir(publisher, 's', fresh, 'x86_64'), { synced: undefined, removed: ['1.1'] }, 'an unlisted build goes')
  await cosaBuild(fresh, '1.2')
  await rm(join(fresh, 'builds/latest'))
  await symlink('1.2', join(fresh, 'builds/latest'))
  t.match(await syncWorkdir(publisher, 's', fresh, 'x86_64'), { synced: '1.0', removed: ['1.2'] }, 'latest on an unlisted build')
  t.equal(await readlink(join(fresh, 'builds/latest')), '1.0')
  await writeFile(join(fresh, 'builds/1.0/x86_64/meta.json'), '{"edited":true}')
  t.match(await syncWorkdir(publisher, 's', fresh, 'x86_64'), { synced: '1.0', removed: [] }, 'an edited meta.json is restored')

  // A store with nothing for this stream: the workdir may claim no build.
  await cosaBuild(fresh, '9.0')
  t.match(await syncWorkdir(publisher, 'other', fresh, 'x86_64'), { removed: ['1.0', '9.0'], latest: undefined })
  t.same((await readdir(join(fresh, 'builds'))).filter((n) => !n.startsWith('.')), [], 'no build, no latest, no builds.json')
  const empty = join(dir, 'empty')
  await mkdir(empty)
  t.same(await syncWorkdir(publisher, 's2', empty, 'x86_64'), {
    removed: [], published: new Set(), publishedArch: new Set(), workspace: { paths: ['builds/builds.json', 'builds/latest'], prune: { dir: 'builds', keep: [] } }
  }, 'a first build: nothing to do here; an engine\'s own copy loses any builds/latest and builds.json')
  await t.rejects(lstat(join(empty, 'builds')), 'and nothing made')
})

t.test('a second arch of a build: its own latest, and a leftover of an attempt that never published removed', async (t) => {
  const { dir, publisher } = await setup(t)
  await publisher.publish(await cosaBuild(join(dir, 'work'), '1.0'))
  const arm = join(dir, 'work-aarch64')
  // An aarch64 attempt at 1.0 that failed before publishing, and one of a build the store does not list.
  for (const id of ['1.0', '0.9']) await mkdir(join(arm, 'builds', id, 'aarch64'), { recursive: true })
  const sync = await syncWorkdir(publisher, 's', arm, 'aarch64')
  t.same([...sync.published], ['1.0'], 'the store lists 1.0')
  t.same([...sync.publishedArch], [], 'but not for aarch64: `cosa build --version 1.0` may build it')
  t.same(sync.removed, ['0.9'], 'an unlisted build removed')
  await t.rejects(lstat(join(arm, 'builds/1.0/aarch64')), 'and 1.0\'s aarch64 directory, which the store does not list')
  t.ok(sync.workspace.paths.includes('builds/1.0/aarch64'), 'an engine\'s own copy loses it too')
  t.same(JSON.parse(await readFile(join(arm, 'builds/builds.json'), 'utf8')).builds, [{ id: '1.0', arches: ['x86_64'] }],
    'builds.json as the store has it')
  await t.rejects(lstat(join(arm, 'builds/latest')), 'no aarch64 build yet: no latest')
})

t.test('the sync follows no symlink a build container planted', async (t) => {
  const { dir, publisher } = await setup(t)
  await publisher.publish(await cosaBuild(join(dir, 'work'), '1.0'))
  const outside = join(dir, 'outside')
  await mkdir(join(outside, 'victim'), { recursive: true })
  await writeFile(join(outside, 'file'), 'precious')

  const work = join(dir, 'hostile')
  await mkdir(work)
  await symlink(outside, join(work, 'builds'))
  await syncWorkdir(publisher, 's', work, 'x86_64')
  t.ok((await lstat(join(work, 'builds'))).isDirectory(), 'builds/ is a real directory now')
  t.same((await readdir(outside)).sort(), ['file', 'victim'], 'the symlink target was not touched')

  await symlink(join(outside, 'file'), join(work, 'builds/builds.json.cosa-buildd-tmp'))
  await writeFile(join(work, 'builds/1.0/x86_64/meta.json'), 'stale')
  await syncWorkdir(publisher, 's', work, 'x86_64')
  t.equal(await readFile(join(outside, 'file'), 'utf8'), 'precious', 'a planted temp-file symlink is replaced, not written through')
})

t.test('the publisher refuses what does not match or leads out', async (t) => {
  const { dir, store, publisher } = await setup(t)
  const work = join(dir, 'work')

  const bad = await cosaBuild(work, '2.0')
  const wrong = { ...bad, meta: { ...bad.meta, images: { ...bad.meta.images, qemu: { ...bad.meta.images.qemu!, sha256: '0'.repeat(64) } } } }
  await t.rejects(publisher.publish(wrong as typeof bad), PublishError)
  t.equal(await store.head('s/builds/2.0/x86_64/meta.json'), undefined, 'a mismatch stores nothing')

  const two = await cosaBuild(work, '3.0')
  const more = { ...two.meta, images: { ...two.meta.images, ostree: { path: 'ostree.tar', sha256: 'f'.repeat(64) } } }
  await writeFile(join(work, 'builds/3.0/x86_64/ostree.tar'), 'not matching')
  await t.rejects(publisher.publish({ ...two, meta: more as Meta }), /sha256/)
  t.same(await readdir(join(dir, 'store/s/builds')).catch(() => []), [], 'the first image, already stored, is removed again')

  const evil = await cosaBuild(work, '4.0')
  await rm(join(work, 'builds/4.0/x86_64/image-4.0.qcow2'))
  await symlink('/etc/passwd', join(work, 'builds/4.0/x86_64/image-4.0.qcow2'))
  await t.rejects(publisher.publish(evil), /not a regular file/, 'a symlinked image')

  const meta = await cosaBuild(work, '5.0')
  await rm(join(work, 'builds/5.0/x86_64/commitmeta.json'))
  await symlink('/etc/passwd', join(work, 'builds/5.0/x86_64/commitmeta.json'))
  const planted = await publisher.publish(meta)
  t.notOk(planted.files?.some((f) => f.path.endsWith('commitmeta.json')), 'a symlinked file is not published')
  t.equal(await store.head('s/builds/5.0/x86_64/commitmeta.json'), undefined, 'nor followed into the store')

  const out = await cosaBuild(join(dir, 'elsewhere'), '6.0')
  await mkdir(join(work, 'builds/6.0'), { recursive: true })
  await symlink(join(dir, 'elsewhere/builds/6.0/x86_64'), join(work, 'builds/6.0/x86_64'))
  await t.rejects(publisher.publish({ ...out, workdir: work }), /leads out of the workdir/, 'a symlinked build directory')

  const ok = await cosaBuild(work, '7.0')
  await publisher.publish(ok)
  await t.rejects(publisher.publish({ ...ok, metaJson: ok.metaJson + ' ' }), /already in the store with a different meta.json/)
  t.same(await store.head('s/builds/7.0/x86_64/meta.json').then((h) => h?.size), ok.metaJson.length, 'the stored build is untouched')
})
