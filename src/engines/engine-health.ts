import type { EngineRegistry } from '../executor/engine-registry.js'
import type { Executor } from '../executor/executor.js'

// Whether each engine answers, what it runs (Docker version, arch) and the
// last error it gave: asked of every engine at once, at most once a
// second, for placement and for GET /v1/engines. A probe is bounded so that
// one engine that hangs holds nobody back.

export interface EngineStatus {
  reachable: boolean
  version?: string | undefined
  /** As builds run there: the configured arch, or the engine's own. Kept from the last answer while it is down. */
  arch?: string | undefined
  lastError?: string | undefined
  lastErrorAt?: string | undefined
  checkedAt: string
}

export class EngineHealth {
  readonly #registry: EngineRegistry
  readonly #timeoutMs: number
  readonly #maxAgeMs: number
  readonly #now: () => Date
  readonly #status = new Map<string, EngineStatus & { at: number }>()
  #probing: Promise<void> | undefined

  constructor (deps: { registry: EngineRegistry, timeoutMs: number, maxAgeMs?: number, now: () => Date }) {
    this.#registry = deps.registry
    this.#timeoutMs = deps.timeoutMs
    this.#maxAgeMs = deps.maxAgeMs ?? 1000
    this.#now = deps.now
  }

  status (name: string): EngineStatus | undefined {
    return this.#status.get(name)
  }

  /** Forgets what an engine said (it was replaced or removed). */
  forget (name: string) {
    this.#status.delete(name)
  }

  /** Probes the engines not heard from within the last second (`fresh`: every one), all at once. */
  async refresh (fresh = false) {
    // One round at a time: a burst of callers shares it, and what it left out is probed after it.
    while (this.#probing) await this.#probing
    const stale = this.#registry.all().filter((e) => fresh || Date.now() - (this.#status.get(e.name)?.at ?? 0) >= this.#maxAgeMs)
    if (!stale.length) return
    this.#probing = Promise.all(stale.map((e) => this.#probe(e))).then(() => undefined).finally(() => { this.#probing = undefined })
    await this.#probing
  }

  /**
   * For placement: what is known now, while a round runs in the background,
   * so that an engine that hangs for the whole probe holds no placement
   * back; waits only when some engine was never probed.
   */
  async settle () {
    const round = this.refresh()
    if (this.#registry.all().every((e) => this.#status.has(e.name))) return
    await round
  }

  /** Probes one engine now: whether it answers at this moment, before a build is placed on it. */
  async confirm (name: string) {
    const engine = this.#registry.get(name)
    if (engine) await this.#probe(engine)
    return this.#status.get(name)?.reachable === true
  }

  async #probe (engine: Executor) {
    const before = this.#status.get(engine.name)
    const checkedAt = this.#now().toISOString()
    try {
      const version = await engine.version(AbortSignal.timeout(this.#timeoutMs))
      const arch = await engine.arch()
      this.#status.set(engine.name, { ...before, reachable: true, version, arch, checkedAt, at: Date.now() })
    } catch (err) {
      this.#status.set(engine.name, {
        ...before, reachable: false, lastError: (err as Error).message, lastErrorAt: checkedAt, checkedAt, at: Date.now()
      })
    }
  }
}
