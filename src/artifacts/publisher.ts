import { constants } from 'node:fs'
import { lstat, open, realpath, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { Artifact } from '../builds/model.js'
import {
  emptyBuildsJson, insertBuild, parseBuildsJson, removeBuilds, serializeBuildsJson, type BuildsJson
} from '../cosa/builds-json.js'
import type { Meta } from '../cosa/meta.js'
import type { Logger } from '../logger.js'
import type { ArtifactStore } from './artifact-store.js'
import { buildsToPrune } from './retention.js'
import type { SpaceGuard } from './space-guard.js'
import { buildDirKey, buildKey, buildsJsonKey } from './store-layout.js'

// Publishing a cosa build: its images, then its metadata, then its entry in
// the stream's builds.json, which is what makes it exist for readers. A
// failure removes what this attempt stored, so the store is left as it was.
// builds.json changes go through one lock per stream (read, insert, prune,
// write), as the Fedora CoreOS pipeline's `builds-json-<stream>` lock does.

/** Beside meta.json in a cosa build directory; copied when present. */
export const METADATA_FILES = ['commitmeta.json', 'ostree-commit-object'] as const
const METADATA_MAX_BYTES = 64 * 1024 * 1024

export class PublishError extends Error {
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = 'PublishError'
  }
}

export interface PublishInput {
  stream: string
  /** The service's build, for artifact URLs. */
  buildId: string
  workdir: string
  arch: string
  meta: Meta
  /** meta.json as the container posted it: stored verbatim. */
  metaJson: string
  keep: number
  /** cosa build ids retention must not remove. */
  pinned: ReadonlySet<string>
}

export interface PublishOutput {
  artifacts: Artifact[]
  /** false when the store already held this build (an unchanged build). */
  stored: boolean
  pruned: string[]
}

export class Publisher {
  readonly #store: ArtifactStore
  readonly #guard: SpaceGuard
  readonly #logger: Logger
  readonly #now: () => Date
  readonly #locks = new Map<string, Promise<unknown>>()

  constructor (deps: { store: ArtifactStore, guard: SpaceGuard, logger: Logger, now: () => Date }) {
    this.#store = deps.store
    this.#guard = deps.guard
    this.#logger = deps.logger
    this.#now = deps.now
  }

  get store () { return this.#store }

  /** Runs `fn` alone among this stream's builds.json writers. */
  withStreamLock<T> (stream: string, fn: () => Promise<T>): Promise<T> {
    const prior = this.#locks.get(stream) ?? Promise.resolve()
    const next = prior.catch(() => undefined).then(fn)
    const tail = next.catch(() => undefined)
    this.#locks.set(stream, tail)
    void tail.then(() => { if (this.#locks.get(stream) === tail) this.#locks.delete(stream) })
    return next
  }

  async readBuildsJson (stream: string): Promise<BuildsJson | undefined> {
    const bytes = await this.#store.getBytes(buildsJsonKey(stream))
    return bytes === undefined ? undefined : parseBuildsJson(bytes.toString('utf8'))
  }

  /** Every failure, the store's own included (S3 down), is a PublishError. */
  async publish (input: PublishInput): Promise<PublishOutput> {
    try {
      return await this.#publish(input)
    } catch (err) {
      throw asPublishError(err)
    }
  }

  async #publish (input: PublishInput): Promise<PublishOutput> {
    const { stream, meta, arch } = input
    const id = meta.buildid
    const artifacts = this.#artifacts(input)
    const stored = await this.#store.getBytes(buildKey(stream, id, arch, 'meta.json'))
    if (stored !== undefined) {
      if (stored.toString('utf8') !== input.metaJson) {
        throw new PublishError(`build ${id} (${arch}) is already in the store with a different meta.json; ` +
          'build with another version, or remove it from the store')
      }
      // Already published; make sure builds.json lists it (a crash may have
      // come between the two).
      const pruned = await this.#updateIndex(input)
      return { artifacts, stored: false, pruned }
    }

    const space = await this.#guard.check()
    if (!space.ok) throw new PublishError(space.message)

    const dir = join(input.workdir, 'builds', id, arch)
    const linked: string[] = []
    try {
      await insideWorkdir(input.workdir, dir)
      for (const image of Object.values(meta.images)) {
        if (!(await lstat(join(dir, image.path))).isFile()) throw new PublishError(`${image.path} is not a regular file`)
        const result = await this.#store.putFile(buildKey(stream, id, arch, image.path), join(dir, image.path),
          { sha256: image.sha256, size: image.size }, contentType(image.path))
        if (result.linked) linked.push(join(dir, image.path))
      }
      for (const file of METADATA_FILES) {
        const bytes = await readSmall(join(dir, file))
        if (bytes) await this.#store.putBytes(buildKey(stream, id, arch, file), bytes, contentType(file))
      }
      // meta.json last: its presence says the build's files are all there.
      await this.#store.putBytes(buildKey(stream, id, arch, 'meta.json'), Buffer.from(input.metaJson), 'application/json')
      const pruned = await this.#updateIndex(input)
      // The store's copy is now the only name of each linked image: a later
      // build container cannot write into a published file.
      for (const path of linked) await unlink(path).catch(() => undefined)
      return { artifacts, stored: true, pruned }
    } catch (err) {
      await this.#store.deletePrefix(`${buildDirKey(stream, id)}${arch}/`).catch((cleanup) =>
        this.#logger.error({ err: cleanup, stream, id }, 'removing a failed publish from the store failed'))
      throw err
    }
  }

  #artifacts (input: PublishInput): Artifact[] {
    return Object.entries(input.meta.images).map(([name, image]) => ({
      name,
      path: `builds/${input.meta.buildid}/${input.arch}/${image.path}`,
      sha256: image.sha256,
      size: image.size ?? 0,
      url: `/v1/builds/${input.buildId}/artifacts/${encodeURIComponent(name)}`,
      location: this.#store.location(buildKey(input.stream, input.meta.buildid, input.arch, image.path))
    }))
  }

  /** Inserts the build into builds.json and prunes beyond `keep`; returns the pruned ids. */
  #updateIndex (input: PublishInput) {
    return this.withStreamLock(input.stream, async () => {
      const now = this.#now()
      const current = await this.readBuildsJson(input.stream) ?? emptyBuildsJson(now)
      const inserted = insertBuild(current, input.meta.buildid, input.arch, now)
      const prune = buildsToPrune(inserted, input.keep, input.pinned)
      const next = prune.length ? removeBuilds(inserted, new Set(prune), now) : inserted
      await this.#store.putBytes(buildsJsonKey(input.stream), serializeBuildsJson(next), 'application/json')
      // Out of builds.json first, then the files: no listed build ever lacks them.
      for (const id of prune) {
        await this.#store.deletePrefix(buildDirKey(input.stream, id)).catch((err) =>
          this.#logger.warn({ err, stream: input.stream, id }, 'pruned build files could not be removed'))
      }
      if (prune.length) this.#logger.info({ stream: input.stream, pruned: prune }, 'pruned builds from the store')
      return prune
    })
  }
}

// The build container wrote this directory: a symlink in it could point at
// any file of the host, which the service (not the container) would read.
async function insideWorkdir (workdir: string, dir: string) {
  const [root, real] = await Promise.all([realpath(workdir), realpath(dir)])
  if (!real.startsWith(root + '/')) throw new PublishError(`${dir} leads out of the workdir`)
}

async function readSmall (path: string) {
  let fh
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new PublishError(`${path} is a symlink`)
    throw err
  }
  try {
    const st = await fh.stat()
    if (!st.isFile()) throw new PublishError(`${path} is not a regular file`)
    if (st.size > METADATA_MAX_BYTES) throw new PublishError(`${path} is larger than ${METADATA_MAX_BYTES} bytes`)
    return await fh.readFile()
  } finally {
    await fh.close()
  }
}

function asPublishError (err: unknown): PublishError {
  if (err instanceof PublishError) return err
  const e = err as NodeJS.ErrnoException
  if (e.code === 'ENOSPC') return new PublishError('the artifact store is full (no space left on device)', { cause: err })
  if (e.code === 'ENOENT') return new PublishError(`a file meta.json lists is missing: ${e.path ?? e.message}`, { cause: err })
  return new PublishError(e.message, { cause: err })
}

export function contentType (file: string) {
  if (file.endsWith('.json')) return 'application/json'
  if (file.endsWith('.tar')) return 'application/x-tar'
  if (file.endsWith('.gz')) return 'application/gzip'
  if (file.endsWith('.xz')) return 'application/x-xz'
  return 'application/octet-stream'
}
