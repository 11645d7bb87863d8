import type { Executor } from './executor.js'

// The engines this installation runs builds on, by name, and what placement
// needs of each: its capacity and whether it is draining. It changes at run
// time (src/engines/engine-service.ts adds, drains and removes engines); the
// runner asks here for the engine of an adopted build, the reconciler walks
// every engine. A build recorded before builds named their engine belongs to
// the default one, the first configured, which cannot be removed.

export interface EngineEntry {
  executor: Executor
  /** Builds it runs at once, at most. */
  capacity: number
  /** Takes no new builds; those it runs finish. */
  draining: boolean
}

const entryOf = (e: Executor | EngineEntry): EngineEntry => 'executor' in e ? e : { executor: e, capacity: 1, draining: false }

export class EngineRegistry {
  readonly #engines = new Map<string, EngineEntry>()
  readonly #default: Executor

  constructor (engines: readonly [Executor | EngineEntry, ...Array<Executor | EngineEntry>]) {
    for (const engine of engines.map(entryOf)) {
      if (this.#engines.has(engine.executor.name)) throw new Error(`two engines are named ${engine.executor.name}`)
      this.#engines.set(engine.executor.name, engine)
    }
    this.#default = entryOf(engines[0]).executor
  }

  /** The first configured engine: where builds of a stream without arches run by default, and /readyz's engine. */
  get default () {
    return this.#default
  }

  /** The engine of that name (no name: the default one); undefined when none is registered under it. */
  get (name: string | undefined) {
    return name === undefined ? this.#default : this.#engines.get(name)?.executor
  }

  entry (name: string) {
    return this.#engines.get(name)
  }

  all () {
    return [...this.#engines.values()].map((e) => e.executor)
  }

  entries () {
    return [...this.#engines.values()]
  }

  /** Adds an engine, or replaces the one of its name. */
  put (entry: EngineEntry) {
    if (entry.executor.name === this.#default.name && entry.executor !== this.#default) throw new Error('the default engine cannot be replaced')
    this.#engines.set(entry.executor.name, entry)
  }

  setDraining (name: string, draining: boolean) {
    const entry = this.#engines.get(name)
    if (entry) entry.draining = draining
  }

  remove (name: string) {
    if (name === this.#default.name) throw new Error('the default engine cannot be removed')
    this.#engines.delete(name)
  }
}
