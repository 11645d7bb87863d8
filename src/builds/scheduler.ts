import type { Logger } from '../logger.js'
import type { Store } from '../store/store.js'
import type { BuildRunner } from './build-runner.js'

// Starts queued builds: oldest first, one at a time per stream (a cosa workdir
// has one writer), up to maxConcurrent in all. The claim itself is one
// conditional update in the store; this loop only decides when to try.

export class Scheduler {
  readonly #store: Store
  readonly #runner: BuildRunner
  readonly #maxConcurrent: number
  readonly #logger: Logger
  readonly #now: () => Date
  readonly #canStart: () => Promise<{ ok: boolean, message: string }>
  #held: string | undefined
  #timer: NodeJS.Timeout | undefined
  #pumping = false
  #again = false
  #stopped = true

  constructor (deps: {
    store: Store
    runner: BuildRunner
    maxConcurrent: number
    logger: Logger
    now: () => Date
    /** Free space, say: while it answers no, queued builds wait. */
    canStart?: () => Promise<{ ok: boolean, message: string }>
  }) {
    this.#canStart = deps.canStart ?? (async () => ({ ok: true, message: '' }))
    this.#store = deps.store
    this.#runner = deps.runner
    this.#maxConcurrent = deps.maxConcurrent
    this.#logger = deps.logger
    this.#now = deps.now
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
        if (this.#held !== gate.message) this.#logger.warn({ reason: gate.message }, 'queued builds wait')
        this.#held = gate.message
        return
      }
      this.#held = undefined
      const build = await this.#store.claimNext(this.#maxConcurrent, this.#now().toISOString())
      if (!build) return
      this.#logger.info({ buildId: build.id, stream: build.stream }, 'build started')
      void this.#runner.run(build).finally(() => this.wake())
    }
  }
}
