import type { EngineHealth } from '../engines/engine-health.js'
import { place, type PlacementEngine, type Waiting } from '../engines/placement.js'
import type { EngineRegistry } from '../executor/engine-registry.js'
import type { Executor } from '../executor/executor.js'
import type { Logger } from '../logger.js'
import type { Placed } from '../store/repositories.js'
import type { Database } from '../store/repositories.js'
import type { BuildRunner } from './build-runner.js'
import { secondsBetween, type BuildLifecycle } from './lifecycle.js'
import type { Build } from './model.js'
import { failedEngines } from './retry-policy.js'
import type { ArchPlacement } from './run/context.js'

/** Why a queued build waits: its stream busy, no room, no engine, or a gate that holds them all. */
export type WaitingFor = 'stream_busy' | Waiting | 'storage_low'
export type Gate = { ok: true } | { ok: false, message: string, waitingFor: 'storage_low' }

// Starts queued builds: oldest first, one at a time per stream (a cosa workdir
// has one writer), up to maxConcurrent in all, each on an engine of its arch
// with room (src/engines/placement.ts: a stream's home engine first). The
// claim itself is one conditional update in the store, which counts the
// engine's running builds against its capacity; this loop decides when to
// try and which build goes where.

interface SchedulerDeps {
  store: Database
  lifecycle: BuildLifecycle
  runner: BuildRunner
  maxConcurrent: number
  logger: Logger
  engines: EngineRegistry
  health: Pick<EngineHealth, 'settle' | 'status' | 'confirm'>
  /** How long a build waits for its home engine to have room (builds.homeEngineWaitMs). */
  homeEngineWaitMs: number
  now: () => Date
  /** Free space, say: while it answers no, queued builds wait. */
  canStart?: () => Promise<Gate>
}

interface Plan {
  start?: { placed: Placed, executor: Executor, home: boolean }
  /** Why each queued build that heads its stream's queue waits. */
  waiting: Map<string, WaitingFor>
}

export class Scheduler {
  readonly #deps: SchedulerDeps
  readonly #canStart: () => Promise<Gate>
  #held: Gate | undefined
  #waiting = new Map<string, WaitingFor>()
  #timer: NodeJS.Timeout | undefined
  #pumping = false
  #again = false
  #stopped = true

  constructor (deps: SchedulerDeps) {
    this.#deps = deps
    this.#canStart = deps.canStart ?? (async () => ({ ok: true }))
  }

  /** Why the queued build waits, as of the last try to start builds (undefined: not known, or not waiting). */
  waitingFor (buildId: string): WaitingFor | undefined {
    return this.#held?.ok === false ? this.#held.waitingFor : this.#waiting.get(buildId)
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
      .catch((err) => this.#deps.logger.error({ err }, 'scheduling failed'))
      .finally(() => {
        this.#pumping = false
        if (this.#again) {
          this.#again = false
          this.wake()
        }
      })
  }

  async #pump () {
    const { store, lifecycle, runner, logger, maxConcurrent } = this.#deps
    while (!this.#stopped) {
      const heads = await store.builds.queueHeads()
      if (!heads.length) {
        this.#waiting.clear()
        return
      }
      const gate = await this.#canStart()
      if (!gate.ok) {
        if (this.#held?.ok !== false || this.#held.message !== gate.message) logger.warn({ reason: gate.message }, 'queued builds wait')
        this.#held = gate
        return
      }
      this.#held = undefined
      const plan = await this.#plan(heads, await store.builds.buildsInState(['running']))
      this.#waiting = plan.waiting
      if (!plan.start) return
      // Placed on what was known; the engine may have gone since. Once it
      // is known down, the next plan makes the build wait or go elsewhere.
      if (!await this.#deps.health.confirm(plan.start.placed.engine)) continue
      const build = await lifecycle.claimNext(maxConcurrent, plan.start.placed)
      if (!build) return
      logger.info({
        buildId: build.id, stream: build.stream, engine: build.engine, arch: build.arch, homeEngine: plan.start.home,
        queueWaitSeconds: secondsBetween(build.createdAt, build.startedAt)
      }, 'build started')
      void runner.run(build, plan.start.executor).finally(() => this.wake())
    }
  }

  /** The first build, oldest first, that an engine can take now; why the ones before it wait. */
  async #plan (queueHeads: Build[], running: Build[]): Promise<Plan> {
    const { store, engines, health, maxConcurrent, homeEngineWaitMs, now } = this.#deps
    // The oldest queued build of each stream with nothing running.
    const busy = new Set(running.map((b) => b.stream))
    const heads = queueHeads.filter((b) => !busy.has(b.stream))
    const waiting = new Map<string, WaitingFor>()
    if (running.length >= maxConcurrent) {
      for (const b of heads) waiting.set(b.id, 'slot')
      return { waiting }
    }
    await health.settle()
    const fleet = this.#fleet(running)
    const defaultArch = health.status(engines.default.name)?.arch
    for (const build of heads) {
      // Queued again after a failed attempt whose supervisor here is still
      // winding down: the runner takes one run of a build at a time.
      if (this.#deps.runner.isActive(build.id)) {
        waiting.set(build.id, 'slot')
        continue
      }
      const arch = (await store.streams.getStream(build.stream))?.arches?.[0] ?? defaultArch
      const home = arch === undefined ? undefined : await store.builds.homeEngine(build.stream, arch)
      const waitedMs = now().getTime() - Date.parse(build.createdAt)
      const decision = place({ arch, home, waitedMs, avoid: failedEngines(build) }, fleet, homeEngineWaitMs)
      if ('waiting' in decision) {
        waiting.set(build.id, decision.waiting)
        continue
      }
      const { engine } = decision
      return {
        start: { placed: { id: build.id, engine: engine.name, arch: arch!, capacity: engine.capacity }, executor: engines.get(engine.name)!, home: decision.home },
        waiting
      }
    }
    return { waiting }
  }

  /**
   * Where a running multi-arch build's next arch goes (run/arch-placement.ts),
   * placed as a queued build is: its home engine for the arch first, within
   * capacity, never a draining engine; or why it waits.
   */
  async placeArch (build: Build, arch: string, waitedMs: number): Promise<ArchPlacement> {
    const { store, engines, health, homeEngineWaitMs } = this.#deps
    await health.settle()
    const fleet = this.#fleet(await store.builds.buildsInState(['running']))
    const home = await store.builds.homeEngine(build.stream, arch)
    const decision = place({ arch, home, waitedMs, avoid: failedEngines(build) }, fleet, homeEngineWaitMs)
    if ('waiting' in decision) return decision
    if (!await health.confirm(decision.engine.name)) return { waiting: 'engine_unavailable' }
    return { placed: { engine: decision.engine.name, arch, capacity: decision.engine.capacity }, executor: engines.get(decision.engine.name)! }
  }

  #fleet (running: Build[]): PlacementEngine[] {
    const { engines, health } = this.#deps
    return engines.entries().map(({ executor, capacity, draining }) => {
      const status = health.status(executor.name)
      return {
        name: executor.name,
        arch: status?.arch,
        capacity,
        draining,
        reachable: status?.reachable ?? false,
        running: running.filter((b) => b.engine === executor.name).length
      }
    })
  }
}
