import type { Logger } from '../logger.js'
import type { Store } from '../store/store.js'
import type { BuildRunner } from './build-runner.js'
import { secondsBetween, type BuildLifecycle } from './lifecycle.js'

/** Why queued builds wait: a stream busy, no free slot, or a gate that holds them all. */
export type WaitingFor = 'stream_busy' | 'slot' | 'engine_unavailable' | 'storage_low'
export type Gate = { ok: true } | { ok: false, message: string, waitingFor: 'engine_unavailable' | 'storage_low' }

// Starts queued builds: oldest first, one at a time per stream (a cosa workdir
// has one writer), up to maxConcurrent in all. The claim itself is one
// conditional update in the store; this loop only decides when to try.

export class Scheduler {
  readonly #store: Store
  readonly #lifecycle: BuildLifecycle
  readonly #runner: BuildRunner
  readonly #maxConcurrent: number
  readonly #logger: Logger
  readonly #canStart: () => Promise<Gate>
  #held: Gate | undefined
  #timer: NodeJS.Timeout | undefined
  #pumping = false
  #again = false
  #stopped = true

  constructor (deps: {
    store: Store
    lifecycle: BuildLifecycle
    runner: BuildRunner
    maxConcurrent: number
    logger: Logger
    /** Free space, say: while it answers no, queued builds wait. */
    canStart?: () => Promise<Gate>
  }) {
    this.#canStart = deps.canStart ?? (async () => ({ ok: true }))
    this.#store = deps.store
    this.#lifecycle = deps.lifecycle
    this.#runner = deps.runner
    this.#maxConcurrent = deps.maxConcurrent
    this.#logger = deps.logger
  }

  /** What holds every queued build back, as of the last try to start one. */
  get heldBy () {
    return this.#held?.ok === false ? this.#held.waitingFor : undefined
  }

  start (pollMs = 1000) {
    this.#stopped = false
    // The timer is a backstop; submits and finished builds wake the loop.
    this.#timer = setInterval(() => this.wake(), pollMs).unref()
    this.wake()
  }

  stop () {
    this.#stopped = true
    clearInterval(this.#timer)
  }

  wake () {
    if (this.#stopped) return
    if (this.#pumping) {
      this.#again = true
      return
    }
    this.#pumping = true
    this.#pump()
      .catch((err) => this.#logger.error({ err }, 'scheduling failed'))
      .finally(() => {
        this.#pumping = false
        if (this.#again) {
          this.#again = false
          this.wake()
        }
      })
  }

  async #pump () {
    while (!this.#stopped) {
      // The gate costs an engine round trip: ask it only when something waits.
      if (!(await this.#store.listBuilds({ state: 'queued', limit: 1 })).length) return
      const gate = await this.#canStart()
      if (!gate.ok) {
        if (this.#held?.ok !== false || this.#held.message !== gate.message) this.#logger.warn({ reason: gate.message }, 'queued builds wait')
        this.#held = gate
        return
      }
      this.#held = undefined
      const build = await this.#lifecycle.claimNext(this.#maxConcurrent)
      if (!build) return
      this.#logger.info({ buildId: build.id, stream: build.stream, queueWaitSeconds: secondsBetween(build.createdAt, build.startedAt) }, 'build started')
      void this.#runner.run(build).finally(() => this.wake())
    }
  }
}
