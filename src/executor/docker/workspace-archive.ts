import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { lstat, mkdir, readdir, readlink, rm, symlink } from 'node:fs/promises'
import { join, posix } from 'node:path'
import type { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { extract, pack, type Headers, type Pack } from 'tar-stream'
import type { PulledFile } from '../executor.js'

// The tar archives a workdir travels in when the engine does not share the
// service's disk (the Docker API's putArchive and getArchive). Both ways
// stream: no file is held whole in memory. What comes back was written by
// the build, so extraction trusts none of its names: an entry lands inside
// the path asked for or the archive is refused, and nothing is written
// through a link.


/** What a file being written may hold back: the engine's 16 KiB TLS records go to disk in larger writes. */
const WRITE_BUFFER = 1024 * 1024

export class ArchiveError extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'ArchiveError'
  }
}

export interface PackSource {
  /** A file, symlink or directory (taken whole) on the service's disk; skipped when absent. */
  from: string
  /** Its name in the archive. */
  as: string
}

/**
 * A tar of `sources` and of `extra` in-memory files, every entry owned by
 * `owner` (the image's user, so the build can write what it is given).
 */
export function packArchive (sources: PackSource[], extra: Array<{ as: string, content: string }>, owner: { uid: number, gid: number }): Readable {
  const tar = pack()
  const add = async () => {
    for (const file of extra) await entry(tar, { name: file.as, type: 'file', mode: 0o644, ...owner }, Buffer.from(file.content))
    for (const source of sources) await addPath(tar, source.from, source.as, owner)
    tar.finalize()
  }
  add().catch((err) => tar.destroy(err))
  return tar
}

async function addPath (tar: Pack, from: string, as: string, owner: { uid: number, gid: number }) {
  const st = await lstat(from).catch(() => undefined)
  if (!st) return
  const base = { name: as, mode: st.mode & 0o7777, mtime: st.mtime, ...owner }
  if (st.isSymbolicLink()) return entry(tar, { ...base, type: 'symlink', linkname: await readlink(from) })
  if (st.isDirectory()) {
    await entry(tar, { ...base, type: 'directory' })
    for (const name of (await readdir(from)).sort()) await addPath(tar, join(from, name), posix.join(as, name), owner)
    return
  }
  if (!st.isFile()) return
  const sink = tar.entry({ ...base, type: 'file', size: st.size })
  await pipeline(createReadStream(from), sink)
}

function entry (tar: Pack, header: Headers, content?: Buffer) {
  return new Promise<void>((resolve, reject) => {
    tar.entry(header, content, (err) => err ? reject(err) : resolve())
  })
}

/**
 * Extracts an archive of `tops` (paths relative to `root`: files or whole
 * directories) into `root`, replacing what each top was; every directory on
 * the way to a top is made a real one (a link there is replaced, never
 * followed). An entry outside the tops, one through a link or of another
 * kind than a file, directory or symlink refuses the archive. `base`: the
 * directory of `root` the entries' names are relative to (Docker names them
 * from a path's last component). The files' paths are relative to `root`.
 */
export async function extractArchive (archive: Readable, root: string, tops: string[], base = ''): Promise<PulledFile[]> {
  // Directories this extraction made or checked: the only places an entry may go.
  const dirs = new Set<string>([''])
  for (const top of tops) {
    await realDirs(root, parentOf(top))
    for (let at = parentOf(top); at !== ''; at = parentOf(at)) dirs.add(at)
    await rm(join(root, top), { recursive: true, force: true })
  }
  const files: PulledFile[] = []
  const reader = extract()
  const done = (async () => {
    for await (const item of reader) {
      const name = entryName(item.header.name, base, tops)
      if (!dirs.has(parentOf(name))) throw new ArchiveError(`archive entry ${item.header.name} is not inside a directory of the archive`)
      const target = join(root, name)
      if (item.header.type === 'directory') {
        await mkdir(target)
        dirs.add(name)
        item.resume()
      } else if (item.header.type === 'symlink') {
        await symlink(item.header.linkname ?? '', target)
        item.resume()
      } else if (item.header.type === 'file') {
        files.push({ path: name, ...await writeHashed(item, target) })
      } else {
        throw new ArchiveError(`archive entry ${item.header.name} is a ${item.header.type ?? 'unknown'}: only files, directories and symlinks are copied`)
      }
    }
  })()
  try {
    await Promise.all([pipeline(archive, reader), done])
  } catch (err) {
    // Whatever the reason, the sender's stream is not read on: end it.
    archive.destroy()
    throw err
  }
  return files
}

/** A relative path's directory, '' at the top. */
const parentOf = (path: string) => posix.dirname(path) === '.' ? '' : posix.dirname(path)

/**
 * The build wrote what an earlier copy brought: every directory on the way
 * to `rel` in `root` must be a real one (a link there is replaced, never
 * followed).
 */
async function realDirs (root: string, rel: string) {
  let at = root
  await mkdir(root, { recursive: true })
  for (const part of rel === '' ? [] : rel.split('/')) {
    at = join(at, part)
    const st = await lstat(at).catch(() => undefined)
    if (st?.isDirectory()) continue
    if (st) await rm(at, { recursive: true, force: true })
    await mkdir(at)
  }
}

function entryName (raw: string, base: string, tops: string[]) {
  const rel = posix.normalize(raw.replace(/\/+$/, ''))
  if (rel.split('/').some((part) => part === '..' || part === '')) throw new ArchiveError(`archive entry ${raw} has an unsafe name`)
  const name = posix.join(base, rel)
  if (!tops.some((top) => name === top || name.startsWith(top + '/'))) throw new ArchiveError(`archive entry ${raw} is outside ${tops.join(', ')}`)
  return name
}

async function writeHashed (item: Readable, target: string) {
  const hash = createHash('sha256')
  let size = 0
  await pipeline(item, async function * (chunks: AsyncIterable<Buffer>) {
    for await (const chunk of chunks) {
      hash.update(chunk)
      size += chunk.length
      yield chunk
    }
  }, createWriteStream(target, { flags: 'wx', highWaterMark: WRITE_BUFFER })) // wx: never through a link an earlier entry left
  return { size, sha256: hash.digest('hex') }
}
