import type { EngineSettings } from '../config.js'
import { errors } from '../errors.js'
import type { EngineRegistry } from '../executor/engine-registry.js'
import { EngineError, type Executor } from '../executor/executor.js'
import type { Logger } from '../logger.js'
import type { Database } from '../store/repositories.js'
import { archWarnings } from './arch-coverage.js'
import type { EngineHealth } from './engine-health.js'
import type { EngineRecord } from './model.js'

// The engines as admins manage them (GET/PUT/DELETE /v1/engines, drain and
// undrain): the store keeps each engine's settings and drain flag, the
// registry the live engines builds are placed on. An engine added is stored
// even when it does not answer yet: GET says it is unreachable, and why.
// Engines of the config file are the file's to change.

/** Makes the live engine of some settings; rejects with an EngineError (kind invalid) when they cannot be used. */
export type Connect = (settings: EngineSettings) => Promise<Executor>

export interface EngineView {
  name: string
  host: string
  /** Whether it is reached over mutual TLS (the certificate paths are not shown). */
  tls: boolean
  /** As builds run there: the configured arch, or the engine's own once it answered. */
  arch?: string | undefined
  capacity: number
  labels: Record<string, string>
  source: EngineRecord['source']
  draining: boolean
  runningBuilds: number
  reachable: boolean
  dockerVersion?: string | undefined
  lastError?: string | undefined
  lastErrorAt?: string | undefined
  checkedAt?: string | undefined
  createdAt: string
  updatedAt: string
}

interface EngineServiceDeps {
  store: Database
  registry: EngineRegistry
  health: EngineHealth
  connect: Connect
  now: () => Date
  logger: Logger
}

/** What makes an engine another one: where it is, the certificates, the arch builds run as. */
const whereOf = (e: EngineSettings) => JSON.stringify([e.host, e.tls?.ca, e.tls?.cert, e.tls?.key, e.arch])

export class EngineService {
  readonly #deps: EngineServiceDeps
  /** Why an engine of the store has no live engine (its certificates could not be read at start, say). */
  readonly #unconnected = new Map<string, string>()
  /** Where each live engine of the registry connects to, as it was made. */
  readonly #where = new Map<string, string>()

  constructor (deps: EngineServiceDeps) {
    this.#deps = deps
  }

  /** Warnings for a stream registered with these arches: one per arch no engine serves now (arch-coverage.ts). */
  async archWarnings (arches: readonly string[] | undefined) {
    if (!arches?.length) return []
    const { registry, health } = this.#deps
    await health.settle()
    return archWarnings(arches, registry.entries().map(({ executor, draining }) =>
      ({ name: executor.name, arch: health.status(executor.name)?.arch, draining })))
  }

  /**
   * At start: writes the config file's engines into the store (they win
   * over a stored engine of the same name; one no longer configured is
   * forgotten), then brings the admin-added ones into the registry, which
   * holds the config's already.
   */
  async load (configured: EngineSettings[]) {
    const { store, now } = this.#deps
    const at = now().toISOString()
    for (const settings of configured) {
      await store.engines.putEngine({ ...settings, source: 'config' }, at)
      this.#where.set(settings.name, whereOf(settings))
    }
    for (const record of await store.engines.listEngines()) {
      if (record.source === 'config' && !configured.some((c) => c.name === record.name)) await store.engines.deleteEngine(record.name)
    }
    await this.sync()
  }

  /**
   * Brings the registry in line with the store: what another instance on the
   * same database added, changed, drained or removed (each refuses to move or
   * remove an engine that runs builds). At start, and with every reconcile.
   */
  async sync () {
    const { store, registry, health } = this.#deps
    const records = await store.engines.listEngines()
    for (const record of records) await this.#adopt(record)
    for (const executor of registry.all()) {
      if (executor === registry.default || records.some((r) => r.name === executor.name)) continue
      registry.remove(executor.name)
      health.forget(executor.name)
      this.#where.delete(executor.name)
    }
  }

  /** The live engine of a stored one: kept while it is where it was, made anew when it moved. */
  async #adopt (record: EngineRecord, connected?: Executor) {
    const { registry, connect, logger } = this.#deps
    const entry = registry.entry(record.name)
    if (entry && !connected && this.#where.get(record.name) === whereOf(record)) {
      entry.capacity = record.capacity
      entry.draining = record.draining
      return
    }
    try {
      registry.put({ executor: connected ?? await connect(record), capacity: record.capacity, draining: record.draining })
      this.#where.set(record.name, whereOf(record))
      this.#unconnected.delete(record.name)
      this.#deps.health.forget(record.name)
    } catch (err) {
      if (this.#unconnected.get(record.name) !== (err as Error).message) {
        logger.error({ engine: record.name, reason: (err as Error).message }, 'an engine could not be set up; builds are not placed on it')
      }
      this.#unconnected.set(record.name, (err as Error).message)
    }
  }

  async list () {
    await this.#deps.health.refresh(true)
    const running = await this.#running()
    return (await this.#deps.store.engines.listEngines()).map((r) => this.#view(r, running.get(r.name) ?? 0))
  }

  async get (name: string) {
    const record = await this.#record(name)
    await this.#deps.health.refresh(true)
    return this.#view(record, (await this.#running()).get(name) ?? 0)
  }

  async put (name: string, fields: Omit<EngineSettings, 'name'>) {
    const { store, health, connect, now } = this.#deps
    const before = await store.engines.getEngine(name)
    if (before?.source === 'config') throw errors.engineConfigured(name)
    const settings = { ...fields, name }
    const running = (await this.#running()).get(name) ?? 0
    if (before && running && whereOf(before) !== whereOf(settings)) throw errors.engineBusy(name, running, 'change where it is')
    let executor
    try {
      executor = await connect(settings)
    } catch (err) {
      if (err instanceof EngineError && err.kind === 'invalid') throw errors.engineInvalid(err.message)
      throw err
    }
    const { engine, created } = await store.engines.putEngine({ ...settings, source: 'api' }, now().toISOString())
    await this.#adopt(engine, executor)
    await health.refresh()
    return { engine: this.#view(engine, running), created }
  }

  async delete (name: string) {
    const { store, registry, health } = this.#deps
    const record = await this.#record(name)
    if (record.source === 'config') throw errors.engineConfigured(name)
    // Draining first: no build is placed on it between the count and the removal.
    const entry = registry.entry(name)
    const wasDraining = entry?.draining ?? false
    registry.setDraining(name, true)
    const running = (await this.#running()).get(name) ?? 0
    if (running) {
      registry.setDraining(name, wasDraining)
      throw errors.engineBusy(name, running, 'remove it')
    }
    await store.engines.deleteEngine(name)
    registry.remove(name)
    health.forget(name)
    this.#unconnected.delete(name)
    this.#where.delete(name)
  }

  /** Stops (or resumes) placing new builds on the engine; builds it runs finish there. */
  async drain (name: string, draining: boolean) {
    const { store, registry, now, logger } = this.#deps
    await this.#record(name)
    const record = (await store.engines.setDraining(name, draining, now().toISOString()))!
    registry.setDraining(name, draining)
    logger.info({ engine: name }, draining ? 'engine draining: no new builds go to it' : 'engine takes builds again')
    return this.#view(record, (await this.#running()).get(name) ?? 0)
  }

  async #record (name: string) {
    const record = await this.#deps.store.engines.getEngine(name)
    if (!record) throw errors.engineNotFound(name)
    return record
  }

  async #running () {
    const counts = new Map<string, number>()
    for (const build of await this.#deps.store.builds.buildsInState(['running'])) {
      if (build.engine) counts.set(build.engine, (counts.get(build.engine) ?? 0) + 1)
    }
    return counts
  }

  #view (record: EngineRecord, runningBuilds: number): EngineView {
    const status = this.#deps.health.status(record.name)
    const unconnected = this.#unconnected.get(record.name)
    return {
      name: record.name,
      host: record.host,
      tls: record.tls !== undefined,
      arch: record.arch ?? status?.arch,
      capacity: record.capacity,
      labels: record.labels,
      source: record.source,
      draining: record.draining,
      runningBuilds,
      reachable: unconnected === undefined && (status?.reachable ?? false),
      dockerVersion: status?.version,
      lastError: unconnected ?? status?.lastError,
      lastErrorAt: unconnected ? undefined : status?.lastErrorAt,
      checkedAt: status?.checkedAt,
      createdAt: record.createdAt,
      updatedAt: record.updatedAt
    }
  }
}
