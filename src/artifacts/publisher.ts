import { createHash } from 'node:crypto'
import { readdir, realpath, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import type { Artifact, PublishedFile } from '../builds/model.js'
import {
  emptyBuildsJson, insertBuild, parseBuildsJson, removeBuilds, serializeBuildsJson, type BuildsJson
} from '../cosa/builds-json.js'
import type { Meta, MetaImage } from '../cosa/meta.js'
import { isDatabaseUnavailable } from '../errors.js'
import type { Logger } from '../logger.js'
import type { ArtifactStore } from './artifact-store.js'
import { buildsToPrune } from './retention.js'
import type { SpaceGuard } from './space-guard.js'
import { buildDirKey, buildFileKey, buildKey, buildsJsonKey, isSafePart } from './store-layout.js'

// Publishing a cosa build: its images, then its metadata, then its entry in
// the stream's builds.json, which is what makes it exist for readers. A
// failure removes what this attempt stored, so the store is left as it was.
// builds.json changes go through one lock per stream (read, insert, prune,
// write), as the Fedora CoreOS pipeline's `builds-json-<stream>` lock does.

/** Beside meta.json: what change detection needs of the previous build (the workdir sync fetches them). */
export const METADATA_FILES = ['commitmeta.json', 'ostree-commit-object'] as const

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
  /** Every file stored, with its hash; only when this publish stored the build. */
  files?: PublishedFile[]
  /** false when the store already held this build (an unchanged build). */
  stored: boolean
  pruned: string[]
}

interface BuildFile {
  key: string
  /** In the workdir. */
  source: string
  /** builds/<id>/..., as the result reports it. */
  path: string
  /** What meta.json says of it, for an image. */
  image?: MetaImage | undefined
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

export class Publisher {
  readonly #store: ArtifactStore
  readonly #guard: SpaceGuard
  readonly #logger: Logger
  readonly #now: () => Date
  readonly #onStored: (bytes: number, seconds: number) => void
  readonly #locks = new Map<string, Promise<unknown>>()
  readonly #lockStream: ((stream: string) => Promise<() => Promise<void>>) | undefined

  constructor (deps: {
    store: ArtifactStore
    guard: SpaceGuard
    logger: Logger
    now: () => Date
    /** Told of each build stored: its bytes and how long storing took (metrics). */
    onStored?: (bytes: number, seconds: number) => void
    /** Holds a stream's builds.json against other replicas (a lock row); resolves with its release. */
    lockStream?: (stream: string) => Promise<() => Promise<void>>
  }) {
    this.#store = deps.store
    this.#guard = deps.guard
    this.#logger = deps.logger
    this.#now = deps.now
    this.#onStored = deps.onStored ?? (() => {})
    this.#lockStream = deps.lockStream
  }

  get store () { return this.#store }

  /** Runs `fn` alone among this stream's builds.json writers, of this process and (lockStream) of other replicas. */
  withStreamLock<T> (stream: string, fn: () => Promise<T>): Promise<T> {
    const prior = this.#locks.get(stream) ?? Promise.resolve()
    const next = prior.catch(() => undefined).then(() => this.#acrossReplicas(stream, fn))
    const tail = next.catch(() => undefined)
    this.#locks.set(stream, tail)
    void tail.then(() => { if (this.#locks.get(stream) === tail) this.#locks.delete(stream) })
    return next
  }

  async #acrossReplicas<T> (stream: string, fn: () => Promise<T>) {
    const release = await this.#lockStream?.(stream)
    try {
      return await fn()
    } finally {
      await release?.().catch((err) => this.#logger.warn({ err, stream }, 'releasing the builds.json lock failed; it expires'))
    }
  }

  async readBuildsJson (stream: string): Promise<BuildsJson | undefined> {
    const bytes = await this.#store.getBytes(buildsJsonKey(stream))
    return bytes === undefined ? undefined : parseBuildsJson(bytes.toString('utf8'))
  }

  /** meta.json of build `id` for `arch`, when the stream's builds.json lists that arch for it. */
  async storedMeta (stream: string, id: string, arch: string): Promise<Meta | undefined> {
    const index = await this.readBuildsJson(stream)
    if (!index?.builds.some((b) => b.id === id && b.arches.includes(arch))) return undefined
    const bytes = await this.#store.getBytes(buildKey(stream, id, arch, 'meta.json'))
    return bytes && JSON.parse(bytes.toString('utf8')) as Meta
  }

  /**
   * Every failure, the store's own included (S3 down), is a PublishError;
   * but the database not answering (the builds.json lock row) is not the
   * build's failure: it goes to the caller as it is, and the build is
   * published again once adopted (publishing is idempotent).
   */
  async publish (input: PublishInput): Promise<PublishOutput> {
    try {
      return await this.#publish(input)
    } catch (err) {
      throw isDatabaseUnavailable(err) ? err : asPublishError(err)
    }
  }

  async #publish (input: PublishInput): Promise<PublishOutput> {
    const { stream, meta, arch } = input
    const id = meta.buildid
    const artifacts = this.artifacts(input)
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

    const started = performance.now()
    const files = await this.#buildFiles(input)
    const published: PublishedFile[] = []
    const linked: string[] = []
    try {
      for (const file of files) {
        const result = await this.#store.putFile(file.key, file.source, file.image ?? {}, contentType(file.source),
          { link: file.image !== undefined })
        published.push({ path: file.path, sha256: result.sha256, size: result.size })
        if (result.linked) linked.push(file.source)
      }
      // meta.json last: its presence says the build's files are all there.
      const metaBytes = Buffer.from(input.metaJson)
      await this.#store.putBytes(buildKey(stream, id, arch, 'meta.json'), metaBytes, 'application/json')
      published.push({ path: `builds/${id}/${arch}/meta.json`, sha256: sha256(metaBytes), size: metaBytes.length })
      const pruned = await this.#updateIndex(input)
      // The store's copy is now the only name of each linked image: a later
      // build container cannot write into a published file.
      for (const path of linked) await unlink(path).catch(() => undefined)
      this.#onStored(published.reduce((sum, f) => sum + f.size, 0), (performance.now() - started) / 1000)
      return { artifacts, files: published, stored: true, pruned }
    } catch (err) {
      await this.#removeAttempt(stream, id, arch).catch((cleanup) =>
        this.#logger.error({ err: cleanup, stream, id }, 'removing a failed publish from the store failed'))
      throw err
    }
  }

  /** What a failed publish stored: the arch's files, and the build's own when no other arch has it listed. */
  async #removeAttempt (stream: string, id: string, arch: string) {
    const listed = (await this.readBuildsJson(stream))?.builds.some((b) => b.id === id)
    await this.#store.deletePrefix(listed ? `${buildDirKey(stream, id)}${arch}/` : buildDirKey(stream, id))
  }

  /**
   * Every regular file of builds/<id>/<arch>/ and of builds/<id>/, as
   * `cosa buildupload` uploads them (real cosa writes manifest-lock files and
   * more beside the images). The container wrote these directories: nothing
   * is followed, hidden files (cosa's semaphores, staging) stay behind, and
   * each image meta.json lists must be there as a regular file.
   */
  async #buildFiles (input: PublishInput): Promise<BuildFile[]> {
    const { stream, meta, arch, workdir } = input
    const id = meta.buildid
    const buildDir = join(workdir, 'builds', id)
    const archDir = join(buildDir, arch)
    await insideWorkdir(workdir, archDir)
    const images = new Map(Object.values(meta.images).map((image) => [image.path, image]))
    const files: BuildFile[] = []
    for (const [dir, key] of [[archDir, (f: string) => buildKey(stream, id, arch, f)], [buildDir, (f: string) => buildFileKey(stream, id, f)]] as const) {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        if (entry.name.startsWith('.') || (dir === archDir && entry.name === 'meta.json')) continue
        if (!entry.isFile()) {
          if (!entry.isDirectory()) this.#logger.warn({ stream, id, file: entry.name }, 'not publishing a build file that is not a regular file')
          continue
        }
        if (!isSafePart(entry.name)) {
          this.#logger.warn({ stream, id, file: entry.name }, 'not publishing a build file whose name the store does not take')
          continue
        }
        const image = dir === archDir ? images.get(entry.name) : undefined
        const rel = dir === archDir ? `builds/${id}/${arch}/${entry.name}` : `builds/${id}/${entry.name}`
        files.push({ key: key(entry.name), source: join(dir, entry.name), path: rel, image })
      }
    }
    for (const path of images.keys()) {
      if (!files.some((f) => f.image?.path === path)) throw new PublishError(`${path} is not a regular file in builds/${id}/${arch}`)
    }
    return files
  }

  /** The build's images as artifacts of the service's build `buildId`: their download routes and where the store keeps them. */
  artifacts (input: Pick<PublishInput, 'stream' | 'buildId' | 'arch' | 'meta'>): Artifact[] {
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
