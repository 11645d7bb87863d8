import type { EngineRegistry } from '../executor/engine-registry.js'
import type { Executor } from '../executor/executor.js'
import type { Logger } from '../logger.js'
import type { Database } from '../store/repositories.js'
import { isTerminal } from './build-state.js'
import type { BuildRunner } from './build-runner.js'
import type { BuildLifecycle } from './lifecycle.js'
import type { Build } from './model.js'
import { someArchEnded } from './run/arches.js'

// Brings the database and every engine back into agreement, from labels and
// rows alone (never from memory): on start, and then periodically. Each
// running build is looked for on the engine it recorded:
//   running row, running job          -> adopt (follow the log, wait again)
//   running row, exited job           -> decide the build from its exit status
//   running row, no job at all        -> requeue (nothing ran) or lost
//   ... of a multi-arch build between two arches -> go on with the next
//   running row, engine not registered -> failed (infrastructure)
//   running row, engine silent for builds.engineLostMs -> failed (infrastructure)
//   job without a live build          -> remove it
//   job of an earlier attempt         -> remove it (the build was retried)
// An engine that does not answer is skipped until a later pass; the others
// are reconciled all the same.
//
// With several replicas on one database (docs/scale-out.md) a pass is a
// singleton duty under the lease row `reconcile`, and it looks only at the
// running builds it could take over (their lease expired, or is this
// replica's own from before a restart): each is taken over with a new
// fencing token before anything is done to it, so a replica that comes
// back from a pause finds its writes refused.

/** The lease row under which one replica at a time reconciles. */
const DUTY = 'reconcile'

interface ReconcilerDeps {
  store: Database
  lifecycle: BuildLifecycle
  engines: EngineRegistry
  runner: BuildRunner
  logger: Logger
  /** builds.engineLostMs: how long an engine may not answer before the attempts it runs count as lost. */
  engineLostMs: number
}

export class Reconciler {
  readonly #deps: ReconcilerDeps
  /** Since when (ms) each engine has failed every pass. */
  readonly #silentSince = new Map<string, number>()

  constructor (deps: ReconcilerDeps) {
    this.#deps = deps
  }

  /**
   * A running build whose lease expired is abandoned, as is one under this
   * replica's id that this process does not supervise (the scheduler marks
   * a build active in the same tick as it claims it). So a pass that failed
   * at start (an engine was down) is simply made good by a later one.
   * Rejects with the first engine's failure once every engine has had its
   * turn. Skipped while another replica holds the duty.
   */
  async reconcile () {
    const { lifecycle } = this.#deps
    if (!await lifecycle.leases.duty(DUTY)) return
    const running = await this.#takeOver()
    try {
      await this.#pass(running)
    } finally {
      // Taken over but left alone (its engine did not answer): let the next pass, here or elsewhere, have it.
      for (const build of running) if (!this.#deps.runner.isActive(build.id)) await lifecycle.leases.letGo(build.id)
    }
  }

  async #pass (running: Build[]) {
    const { engines } = this.#deps
    await this.#unregistered(running.filter((b) => !engines.get(b.engine)))
    const failures: unknown[] = []
    for (const executor of engines.all()) {
      const builds = running.filter((b) => engines.get(b.engine) === executor)
      try {
        await this.#builds(executor, builds)
        await this.#orphans(executor)
        this.#silentSince.delete(executor.name)
      } catch (err) {
        failures.push(err)
        await this.#silent(executor, builds)
      }
    }
    if (failures.length) throw failures[0]
  }

  /** The abandoned running builds, each now under a lease of this replica's. */
  async #takeOver () {
    const { store, lifecycle, runner, logger } = this.#deps
    const taken: Build[] = []
    for (const { build, token } of await store.leases.adoptable(lifecycle.leases.terms.owner)) {
      if (runner.isActive(build.id)) continue
      const mine = await lifecycle.leases.takeOver(build.id, token)
      if (!mine) continue
      if (token) logger.info({ buildId: build.id, fromToken: token }, 'took over a build whose lease expired (or was this replica\'s before a restart)')
      taken.push(mine)
    }
    return taken
  }

  async #builds (executor: Executor, builds: Build[]) {
    const { lifecycle, runner, logger } = this.#deps
    for (const build of builds) {
      if (runner.isActive(build.id)) continue
      const state = build.containerId ? await executor.inspect(build.containerId) : await executor.findByBuild(build.id)
      // Claimed and launched while the engine answered.
      if (runner.isActive(build.id)) continue
      if (!state && !build.containerId && someArchEnded(build)) {
        // A multi-arch build between two arches: it goes on with the next.
        void runner.resume(build, executor)
        continue
      }
      if (!state) {
        if (build.containerId) {
          await lifecycle.finish(build, { state: 'failed', reason: 'lost', message: 'the build container disappeared' })
        } else {
          await lifecycle.requeue(build.id)
        }
        logger.warn({ buildId: build.id, engine: executor.name }, build.containerId ? 'build lost its job' : 'build requeued')
        continue
      }
      if (!build.containerId) await lifecycle.record(build.id, { containerId: state.id })
      if (state.running) void runner.adopt(build, executor, state.id)
      else await runner.finishExited(build, executor, state.id)
    }
  }

  async #orphans (executor: Executor) {
    const { store, runner, logger } = this.#deps
    for (const job of await executor.listOwned()) {
      // Read after the list: a job listed was created before this read.
      const build = await store.builds.getBuild(job.buildId)
      const earlier = build !== undefined && isEarlierAttempt(build, job.id)
      if (build && !isTerminal(build.state) && !earlier) continue
      if (build && !earlier && runner.isActive(build.id)) continue
      logger.info({ job: job.name, engine: executor.name },
        earlier ? 'removing the job of an earlier attempt of a retried build' : 'removing a job that belongs to no live build')
      await executor.remove(job.id)
    }
  }

  /**
   * Builds on an engine that has not answered for builds.engineLostMs, whose
   * supervisor is gone: the attempt is lost (infrastructure, so retried
   * elsewhere while retries are left). Its job, should the engine come
   * back, is an earlier attempt's, and removed then.
   */
  async #silent (executor: Executor, builds: Build[]) {
    const { lifecycle, runner, logger, engineLostMs } = this.#deps
    const since = this.#silentSince.get(executor.name) ?? Date.now()
    this.#silentSince.set(executor.name, since)
    if (Date.now() - since < engineLostMs) return
    for (const build of builds.filter((b) => !runner.isActive(b.id))) {
      const done = await lifecycle.finish(build, {
        state: 'failed', reason: 'infrastructure', message: `the engine ${executor.name} did not answer for ${Math.round((Date.now() - since) / 1000)}s`
      })
      logger.warn({ buildId: build.id, engine: executor.name, state: done?.state }, 'the build\'s engine does not answer: its attempt is lost')
    }
  }

  /** Builds whose engine is no longer registered: nothing can look for their jobs. */
  async #unregistered (builds: Build[]) {
    const { lifecycle, logger } = this.#deps
    for (const build of builds) {
      const done = await lifecycle.finish(build, {
        state: 'failed', reason: 'infrastructure', message: `the engine ${build.engine} that ran the build is not configured any more`
      })
      logger.warn({ buildId: build.id, engine: build.engine },
        done?.state === 'queued' ? 'build queued again: its engine is not configured' : 'build failed: its engine is not configured')
    }
  }
}

/**
 * A job of a retried build that is not its current attempt's: the build is
 * queued again (its attempt ended), or runs in another recorded container.
 * A running build that has not recorded its container yet may own the job.
 */
function isEarlierAttempt (build: Build, jobId: string) {
  if (!build.attempts?.length) return false
  if (build.state === 'queued') return true
  return build.state === 'running' && build.containerId !== undefined && build.containerId !== jobId
}
