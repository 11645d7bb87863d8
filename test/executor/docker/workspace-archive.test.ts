import { createHash } from 'node:crypto'
import { lstat, mkdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import t from 'tap'
import { extract, pack, type Headers } from 'tar-stream'
import { ArchiveError, extractArchive, packArchive } from '../../../src/executor/docker/workspace-archive.js'
import { tempDir } from '../../helpers.js'

// The tars a workdir travels in to and from an engine that keeps its own
// (volume-workspace.ts): a round trip, and what a hostile build could put in
// an archive it hands back.

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')

/** A tar made entry by entry, as a build's workdir could make Docker answer. */
function tarOf (entries: Array<Headers & { content?: string }>) {
  const tar = pack()
  for (const { content, ...header } of entries) tar.entry(header, content ?? '')
  tar.finalize()
  return tar as unknown as Readable
}

t.test('a tree goes out and comes back: files hashed, directories and links as they were', async (t) => {
  const root = await tempDir(t)
  const src = join(root, 'src', 'build')
  await mkdir(join(src, 'x86_64'), { recursive: true })
  const big = Buffer.alloc(3 * 1024 * 1024 + 7, 'q')
  await writeFile(join(src, 'x86_64', 'meta.json'), '{"buildid":"1"}')
  await writeFile(join(src, 'x86_64', 'disk.qcow2'), big)
  await symlink('x86_64', join(src, 'latest'))
  const into = join(root, 'out')
  const files = await extractArchive(packArchive([{ from: src, as: 'build' }, { from: join(root, 'absent'), as: 'absent' }], [], { uid: 0, gid: 0 }), into, ['build'])
  t.same(files.map((f) => f.path).sort(), ['build/x86_64/disk.qcow2', 'build/x86_64/meta.json'])
  t.equal(files.find((f) => f.path.endsWith('qcow2'))!.sha256, sha(big), 'hashed as it arrived')
  t.equal(files.find((f) => f.path.endsWith('qcow2'))!.size, big.length)
  t.same(await readFile(join(into, 'build/x86_64/disk.qcow2')), big)
  t.equal(await readlink(join(into, 'build/latest')), 'x86_64', 'a link stays a link')
  t.ok((await lstat(join(into, 'build/latest'))).isSymbolicLink())
})

t.test('what goes out is owned by the image user, with the lists beside it', async (t) => {
  const root = await tempDir(t)
  await writeFile(join(root, 'f'), 'x')
  const headers: Headers[] = []
  const reader = extract()
  const done = (async () => { for await (const item of reader) { headers.push(item.header); item.resume() } })()
  packArchive([{ from: join(root, 'f'), as: 'in/f' }], [{ as: 'in.paths', content: 'f\n' }], { uid: 1000, gid: 1001 }).pipe(reader)
  await done
  t.same(headers.map((h) => [h.name, h.uid, h.gid]), [['in.paths', 1000, 1001], ['in/f', 1000, 1001]])
})

t.test('extraction replaces what was there', async (t) => {
  const into = await tempDir(t)
  await mkdir(join(into, 'kola', 'old'), { recursive: true })
  await writeFile(join(into, 'kola', 'old', 'stale'), 'x')
  await extractArchive(tarOf([{ name: 'kola', type: 'directory' }, { name: 'kola/status', type: 'file', content: '0 1\n' }]), into, ['kola'])
  await t.rejects(lstat(join(into, 'kola', 'old')), 'the old tree is gone')
  t.equal(await readFile(join(into, 'kola', 'status'), 'utf8'), '0 1\n')
})

t.test('a hostile archive is refused, and writes nothing outside', async (t) => {
  const into = await tempDir(t)
  const outside = await tempDir(t)
  const refuse = async (what: string, entries: Array<Headers & { content?: string }>) => {
    const err = await extractArchive(tarOf(entries), into, ['build']).then(() => undefined, (e: unknown) => e)
    t.ok(err instanceof ArchiveError, what)
  }
  await refuse('an entry beside the path asked for', [{ name: 'other', type: 'file', content: 'x' }])
  await refuse('an entry climbing out', [{ name: 'build', type: 'directory' }, { name: 'build/../../x', type: 'file', content: 'x' }])
  await refuse('an entry whose directory is not in the archive', [{ name: 'build/a/b', type: 'file', content: 'x' }])
  await refuse('an entry through a link', [
    { name: 'build', type: 'directory' },
    { name: 'build/out', type: 'symlink', linkname: outside },
    { name: 'build/out/planted', type: 'file', content: 'x' }
  ])
  await refuse('a hard link', [{ name: 'build', type: 'directory' }, { name: 'build/h', type: 'link', linkname: '/etc/passwd' }])
  await refuse('a device', [{ name: 'build', type: 'directory' }, { name: 'build/d', type: 'block-device' }])
  await t.rejects(lstat(join(outside, 'planted')), 'nothing was written through the link')
})
