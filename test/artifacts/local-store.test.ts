import { createHash } from 'node:crypto'
import { link, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { IntegrityError } from '../../src/artifacts/artifact-store.js'
import { LocalStore } from '../../src/artifacts/local-store.js'
import { tempDir } from '../helpers.js'

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const text = async (s: NodeJS.ReadableStream) => { let out = ''; for await (const c of s) out += c; return out }

t.test('putFile verifies while it reads, and takes a lone file by hard link', async (t) => {
  const dir = await tempDir(t)
  const store = new LocalStore(join(dir, 'store'))
  const data = Buffer.from('x'.repeat(100_000))
  const src = join(dir, 'image.qcow2')
  await writeFile(src, data)

  const linked = await store.putFile('s/builds/1/x86_64/image.qcow2', src, { sha256: sha(data), size: data.length }, 'x')
  t.same(linked, { size: data.length, sha256: sha(data), linked: true })
  const [a, b] = await Promise.all([stat(src), stat(store.location('s/builds/1/x86_64/image.qcow2'))])
  t.equal(a.ino, b.ino, 'same filesystem, one link: the store links it')

  // A file with another name somewhere (nlink 2) could be written through that name: copy it.
  const copied = await store.putFile('s/builds/2/x86_64/image.qcow2', src, { sha256: sha(data) }, 'x')
  t.same(copied, { size: data.length, sha256: sha(data), linked: false })
  t.not((await stat(store.location('s/builds/2/x86_64/image.qcow2'))).ino, a.ino, 'a copy, not a link')
  t.same(await readFile(store.location('s/builds/2/x86_64/image.qcow2')), data)

  // A file meta.json does not describe: nothing to check, its hash reported; link: false copies a lone file.
  const lone = join(dir, 'manifest-lock.json')
  await writeFile(lone, '{}')
  t.same(await store.putFile('s/builds/9/x86_64/manifest-lock.json', lone, {}, 'x', { link: false }),
    { size: 2, sha256: sha(Buffer.from('{}')), linked: false })
  t.not((await stat(store.location('s/builds/9/x86_64/manifest-lock.json'))).ino, (await stat(lone)).ino, 'copied')

  for (const [why, expected] of [['sha256', { sha256: '0'.repeat(64) }], ['size', { sha256: sha(data), size: 5 }]] as const) {
    for (const single of [true, false]) {
      const file = join(dir, `bad-${why}-${single}`)
      await writeFile(file, data)
      if (!single) await link(file, `${file}.twin`)
      await t.rejects(store.putFile(`s/builds/3/x86_64/${why}-${single}`, file, expected, 'x'), IntegrityError,
        `a wrong ${why} is refused (${single ? 'link' : 'copy'} path)`)
    }
  }
  t.same(await readdir(join(dir, 'store/s/builds/3/x86_64')).catch(() => []), [], 'nothing refused is visible')
  t.same(await readdir(join(dir, 'store/.staging')), [], 'and nothing is left in staging')

  await symlink('/etc/passwd', join(dir, 'evil'))
  await t.rejects(store.putFile('s/builds/4/x86_64/evil', join(dir, 'evil'), { sha256: 'x' }, 'x'), /not a regular file/)
})

t.test('reads, ranges, replacement and removal', async (t) => {
  const dir = await tempDir(t)
  const store = new LocalStore(join(dir, 'store'))
  await store.putBytes('s/builds/builds.json', Buffer.from('one'), 'application/json')
  const first = await store.head('s/builds/builds.json')
  await store.putBytes('s/builds/builds.json', Buffer.from('second'), 'application/json')
  const second = await store.head('s/builds/builds.json')
  t.equal(second?.size, 6)
  t.not(second?.etag, first?.etag, 'a new version has a new ETag')
  t.equal((await store.getBytes('s/builds/builds.json'))?.toString(), 'second')
  const part = await store.get('s/builds/builds.json', { start: 1, end: 3 })
  t.equal(await text(part!.body), 'eco')
  t.equal(part?.size, 6, 'the size is the whole file\'s')
  t.equal(await store.get('s/missing'), undefined)
  t.equal(await store.head('s/builds'), undefined, 'a directory is not an object')
  t.equal(await store.getBytes('nope/x'), undefined)

  await store.putBytes('s/builds/1/x86_64/meta.json', Buffer.from('{}'), 'application/json')
  await store.putBytes('s/builds/10/x86_64/meta.json', Buffer.from('{}'), 'application/json')
  await store.deletePrefix('s/builds/1/')
  t.same((await readdir(join(dir, 'store/s/builds'))).sort(), ['10', 'builds.json'], 'only that prefix goes')
  await store.deletePrefix('s/builds/1/')
  await store.deletePrefix('s/builds/10/')
  t.equal(await store.head('s/builds/10/x86_64/meta.json'), undefined)
  t.same(await readdir(join(dir, 'store/s/builds')), ['builds.json'], 'the prefix goes whole')

  for (const key of ['../x', 's/../../x', '/etc/passwd', 's//x', 's/./x', 's/x\0']) {
    await t.rejects(store.getBytes(key), /unsafe store key/, `refused: ${JSON.stringify(key)}`)
  }
  t.ok(await store.freeBytes() > 0)
})
