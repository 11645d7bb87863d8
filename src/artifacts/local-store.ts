import { randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { link, lstat, mkdir, open, readFile, rename, rm, rmdir, stat, statfs } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { IntegrityError, type ArtifactStore, type ByteRange, type Expected, type PutOptions, type PutResult } from './artifact-store.js'
import { READ, verifier } from './integrity.js'

// The store as a directory tree. Every file appears by rename from a staging
// directory on the same filesystem, so a reader sees all of it or nothing.
// A workdir file on the same filesystem with a single link is hashed in one
// read pass and hard-linked in: a 2 GiB image costs a read, not a copy.

const STAGING = '.staging'

export class LocalStore implements ArtifactStore {
  readonly kind = 'local'
  readonly root: string

  constructor (root: string) {
    this.root = root
  }

  location (key: string) {
    return this.#path(key)
  }

  #path (key: string) {
    // Keys come from checked names; this is the last line, not the first.
    if (key.includes('\0') || key.split('/').some((s) => s === '' || s === '.' || s === '..')) {
      throw new Error(`unsafe store key ${JSON.stringify(key)}`)
    }
    return join(this.root, key)
  }

  async #stagingPath () {
    const dir = join(this.root, STAGING)
    await mkdir(dir, { recursive: true })
    return join(dir, randomBytes(8).toString('hex'))
  }

  /** Writes `key` through a staging file that `write` fills; it appears by rename, or not at all. */
  async #stage<T> (key: string, write: (staged: string) => Promise<T>): Promise<T> {
    const target = this.#path(key)
    await mkdir(dirname(target), { recursive: true })
    const staged = await this.#stagingPath()
    try {
      const out = await write(staged)
      await rename(staged, target)
      return out
    } catch (err) {
      await rm(staged, { force: true })
      throw err
    }
  }

  async putFile (key: string, path: string, expected: Expected, _contentType?: string, options: PutOptions = {}): Promise<PutResult> {
    await mkdir(this.root, { recursive: true })
    const [src, root] = await Promise.all([lstat(path), stat(this.root)])
    if (!src.isFile()) throw new IntegrityError(`${key}: not a regular file`)
    const linkable = options.link !== false && src.dev === root.dev && src.nlink === 1
    return this.#stage(key, async (staged) => {
      const v = verifier(key, expected)
      if (linkable) {
        await pipeline(createReadStream(path, READ), v.stream, drain)
        await link(path, staged)
      } else {
        await pipeline(createReadStream(path, READ), v.stream, createWriteStream(staged, { flags: 'wx' }))
        await fsync(staged)
      }
      return { size: v.size(), sha256: v.sha256(), linked: linkable }
    })
  }

  async putBytes (key: string, data: Buffer, _contentType?: string) {
    await this.#stage(key, async (staged) => {
      const fh = await open(staged, 'wx')
      try {
        await fh.writeFile(data)
        await fh.sync()
      } finally {
        await fh.close()
      }
    })
  }

  async getBytes (key: string) {
    return readFile(this.#path(key)).catch(notFound)
  }

  async head (key: string) {
    const st = await stat(this.#path(key)).catch(notFound)
    if (!st?.isFile()) return undefined
    // Files are never rewritten in place, so inode and size name a version.
    return { size: st.size, etag: `"${st.ino.toString(16)}-${st.size.toString(16)}"`, lastModified: st.mtime }
  }

  async get (key: string, range?: ByteRange) {
    const path = this.#path(key)
    const fh = await open(path, 'r').catch(notFound)
    if (!fh) return undefined
    try {
      const st = await fh.stat()
      if (!st.isFile()) {
        await fh.close()
        return undefined
      }
      const body = fh.createReadStream(range ? { start: range.start, end: range.end } : {})
      return {
        body,
        size: st.size,
        etag: `"${st.ino.toString(16)}-${st.size.toString(16)}"`,
        lastModified: st.mtime
      }
    } catch (err) {
      await fh.close()
      throw err
    }
  }

  async deletePrefix (prefix: string) {
    const dir = this.#path(prefix.replace(/\/$/, ''))
    // Renamed away first: readers see the whole build or none of it.
    const trash = await this.#stagingPath()
    try {
      await rename(dir, trash)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return
      throw err
    }
    await rm(trash, { recursive: true, force: true })
    // An emptied build directory goes too (a failed publish of its only arch).
    await rmdir(dirname(dir)).catch(() => undefined)
  }

  async freeBytes () {
    await mkdir(this.root, { recursive: true })
    const fs = await statfs(this.root)
    return fs.bavail * fs.bsize
  }
}

async function drain (chunks: AsyncIterable<Buffer>) {
  for await (const _ of chunks);
}

async function fsync (path: string) {
  const fh = await open(path, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

function notFound (err: NodeJS.ErrnoException): undefined {
  if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined
  throw err
}
