import type { Readable } from 'node:stream'
import { KOLA_DIR } from '../cosa/recipe.js'
import { errors } from '../errors.js'
import type { EngineRegistry } from '../executor/engine-registry.js'
import { EngineError, type PulledFile } from '../executor/executor.js'
import type { Database } from '../store/repositories.js'
import type { HeldLeases } from './held-leases.js'
import { secondaryArch } from './run/arches.js'

// A build on an engine that keeps its own workdir (a remote engine's
// volume) may send the files of the build it made to the service itself,
// as one tar over HTTP, instead of the service copying them back through
// the engine's archive endpoint after it ends (5.4× the time of hashing
// them, docs/benchmarks.md). The container needs a network that reaches
// builds.resultUrl for that (docs/engines.md#uploads): without one the
// upload fails and the copy through the engine is made as before, so an
// upload is only ever a faster way to the same files. What arrives is
// checked as strictly as the engine's archive: only the build's own paths,
// nothing through a link.

/** What a build made, as its upload names it: the paths of its workdir it sends, relative to the workdir. */
export function uploadPaths (cosaBuildId: string) {
  return ['builds/builds.json', 'builds/latest', `builds/${cosaBuildId}`, KOLA_DIR]
}

export interface Received { cosaBuildId: string, files: PulledFile[] }

export class WorkdirUploads {
  readonly #store: Database
  readonly #engines: Pick<EngineRegistry, 'get'>
  readonly #leases: Pick<HeldLeases, 'token'>
  /** By build id: what the build's current job sent, until the job's end takes it. */
  readonly #received = new Map<string, Received>()

  constructor (deps: { store: Database, engines: Pick<EngineRegistry, 'get'>, leases: Pick<HeldLeases, 'token'> }) {
    this.#store = deps.store
    this.#engines = deps.engines
    this.#leases = deps.leases
  }

  /**
   * Writes `archive` (a tar of uploadPaths) into the service's copy of the
   * running build's workdir, each file hashed on the way. Only the replica
   * that supervises the build takes it: the files are for its own disk.
   */
  async receive (buildId: string, cosaBuildId: string, archive: Readable): Promise<Received> {
    const build = await this.#store.builds.getBuild(buildId)
    if (!build) throw errors.buildNotFound(buildId)
    if (build.state !== 'running') throw errors.buildNotRunning(buildId, build.state)
    const executor = this.#engines.get(build.engine)
    if (!executor) throw errors.uploadNotTaken(`build ${buildId} runs on engine ${build.engine}, which is not configured here`)
    if (this.#leases.token(buildId) === undefined) {
      throw errors.uploadNotTaken(`this replica does not supervise build ${buildId}: its files are copied through the engine when it ends`)
    }
    this.#received.delete(buildId)
    let files: PulledFile[] | undefined
    try {
      files = await executor.receiveBuild({ stream: build.stream, arch: secondaryArch(build), archive, paths: uploadPaths(cosaBuildId) })
    } catch (err) {
      if (err instanceof EngineError && err.kind === 'invalid') throw errors.uploadRejected(err.message)
      throw err
    }
    if (files === undefined) {
      throw errors.uploadNotTaken(`build ${buildId} runs on an engine that shares the service's disk: there is nothing to upload`)
    }
    const received = { cosaBuildId, files }
    this.#received.set(buildId, received)
    return received
  }

  /** What the build's job sent for `cosaBuildId`, once: undefined when it sent nothing whole (then copy through the engine). */
  take (buildId: string, cosaBuildId: string): PulledFile[] | undefined {
    const received = this.#received.get(buildId)
    this.#received.delete(buildId)
    return received?.cosaBuildId === cosaBuildId ? received.files : undefined
  }

  /** The build's job ended without its upload being taken (an attempt that failed): forget it. */
  forget (buildId: string) {
    this.#received.delete(buildId)
  }
}
