import { errors } from '../errors.js'
import type { Database } from '../store/repositories.js'
import type { ArtifactStore, ByteRange, StoredObject } from './artifact-store.js'
import { buildFileKey, buildKey, buildsJsonKey, isSafePart } from './store-layout.js'

// Reads of published builds: one artifact of a service build, looked up by
// its name in the recorded list, or any file of the store in cosa's layout
// (what `cosa buildfetch --url` reads), for a stream that exists. A client
// path is never joined onto anything: each part is a checked name.

export interface StoredFile {
  key: string
  /** As the store had it when it was looked up: a download needs no second look. */
  stat: StoredObject
  filename: string
  /** A strong entity tag when the content's hash is known. */
  etag?: string | undefined
  /** Metadata changes (builds.json); artifacts never do. */
  mutable: boolean
}

/** Database faults on reads are 503s with their message, not 500s. */
async function storeCall<T> (fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw errors.storeUnavailable((err as Error).message)
  }
}

export class ArtifactService {
  readonly #store: Database
  readonly #artifacts: ArtifactStore

  constructor (deps: { store: Database, artifacts: ArtifactStore }) {
    this.#store = deps.store
    this.#artifacts = deps.artifacts
  }

  async artifact (buildId: string, name: string): Promise<StoredFile> {
    const build = await this.#store.builds.getBuild(buildId)
    if (!build) throw errors.buildNotFound(buildId)
    if (build.state !== 'succeeded' && build.state !== 'unchanged') throw errors.notPublished(buildId, build.state)
    const artifact = build.result?.artifacts.find((a) => a.name === name)
    if (!artifact || !build.result) {
      const names = build.result?.artifacts.map((a) => a.name).join(', ') || 'none'
      throw errors.artifactNotFound(`build ${buildId} has no artifact ${JSON.stringify(name)} (it has: ${names})`)
    }
    const file = artifact.path.split('/').at(-1)!
    const key = buildKey(build.stream, build.result.cosaBuildId, build.result.arch, file)
    const stat = await this.#head(key)
    if (!stat) throw errors.artifactPruned(`artifact ${name} of build ${build.result.cosaBuildId}`)
    return { key, stat, filename: file, etag: `"${artifact.sha256}"`, mutable: false }
  }

  /** A file of the stream's published builds: builds.json, <id>/<file> or <id>/<arch>/<file>. */
  async layoutFile (stream: string, parts: string[]): Promise<StoredFile> {
    if (!await this.#store.streams.getStream(stream)) throw errors.streamNotFound(stream)
    const shown = parts.join('/')
    if (!parts.every(isSafePart)) throw errors.invalidRequest(`path ${JSON.stringify(shown)} is not a file of cosa's layout`)
    const [a, b, c] = parts as [string, string?, string?]
    const key = parts.length === 1 && a === 'builds.json'
      ? buildsJsonKey(stream)
      : parts.length === 2 ? buildFileKey(stream, a, b!) : parts.length === 3 ? buildKey(stream, a, b!, c!) : undefined
    if (key === undefined) throw errors.invalidRequest(`path ${JSON.stringify(shown)} is not builds.json, <id>/<file> or <id>/<arch>/<file>`)
    const stat = await this.#head(key)
    if (!stat) throw errors.artifactNotFound(`stream ${stream} has no published builds/${shown}`)
    return { key, stat, filename: parts.at(-1)!, mutable: parts.length === 1 }
  }

  #head (key: string) {
    return storeCall(() => this.#artifacts.head(key))
  }

  open (key: string, range?: ByteRange) {
    return storeCall(() => this.#artifacts.get(key, range))
  }
}
