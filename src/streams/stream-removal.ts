import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { ArtifactStore } from '../artifacts/artifact-store.js'
import type { BuildLogs } from '../builds/build-logs.js'
import type { DataDir } from '../data-dir.js'
import { errors } from '../errors.js'
import type { Store } from '../store/store.js'

// DELETE /v1/streams/{stream}: the stream, its cosa workdir and its config
// mirror go; its published builds stay in the artifact store (and its build
// records in the database) unless the caller purges them too. A stream with
// a build queued or running is refused: that build owns the workdir.

export interface StreamRemovalDeps {
  store: Store
  dataDir: DataDir
  artifacts: ArtifactStore
  logs: BuildLogs
  /** Forgets what is kept in memory of the stream's builds. */
  forget: (stream: string) => void
}

export class StreamRemoval {
  readonly #deps: StreamRemovalDeps

  constructor (deps: StreamRemovalDeps) {
    this.#deps = deps
  }

  async remove (name: string, purge: boolean) {
    const { store, dataDir, artifacts, logs, forget } = this.#deps
    const { outcome, purged } = await store.deleteStream(name, purge)
    if (outcome === 'missing') throw errors.streamNotFound(name)
    if (outcome === 'busy') throw errors.streamBusy(name)
    forget(name)
    await rm(join(dataDir.streams, name), { recursive: true, force: true })
    if (!purge) return
    for (const id of purged) await logs.remove(id)
    await artifacts.deletePrefix(`${name}/`)
  }
}
