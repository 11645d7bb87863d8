import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { ArtifactStore } from '../artifacts/artifact-store.js'
import type { LogStore } from '../logs/log-store.js'
import type { DataDir } from '../data-dir.js'
import { errors } from '../errors.js'
import type { EngineRegistry } from '../executor/engine-registry.js'
import type { Logger } from '../logger.js'
import type { Database } from '../store/repositories.js'

// DELETE /v1/streams/{stream}: the stream, its cosa workdir and its config
// mirror go; its published builds stay in the artifact store (and its build
// records in the database) unless the caller purges them too. A stream with
// a build queued or running is refused: that build owns the workdir. An
// engine that keeps its own copy of the workdir (a volume) is asked to
// delete it; one that cannot now is logged, and the copy stays on it.

export interface StreamRemovalDeps {
  store: Database
  dataDir: DataDir
  artifacts: ArtifactStore
  logs: LogStore
  engines: Pick<EngineRegistry, 'all'>
  logger: Logger
  /** Forgets what is kept in memory of the stream's builds. */
  forget: (stream: string) => void
}

export class StreamRemoval {
  readonly #deps: StreamRemovalDeps

  constructor (deps: StreamRemovalDeps) {
    this.#deps = deps
  }

  async remove (name: string, purge: boolean) {
    const { store, dataDir, artifacts, logs, forget, engines, logger } = this.#deps
    const { outcome, purged } = await store.streams.deleteStream(name, purge)
    if (outcome === 'missing') throw errors.streamNotFound(name)
    if (outcome === 'busy') throw errors.streamBusy(name)
    forget(name)
    await rm(join(dataDir.streams, name), { recursive: true, force: true })
    for (const engine of engines.all()) {
      // A multi-arch stream's secondary arch has a workdir of its own, on an engine of that arch.
      const own = await engine.arch().catch(() => undefined)
      for (const arch of own === undefined ? [undefined] : [undefined, own]) {
        await engine.removeWorkspace(name, arch).catch((err: unknown) =>
          logger.warn({ err, stream: name, engine: engine.name, arch }, 'the engine kept the removed stream\'s workdir'))
      }
    }
    if (!purge) return
    for (const id of purged) await logs.remove(id)
    await artifacts.deletePrefix(`${name}/`)
  }
}
