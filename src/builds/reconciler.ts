import type { Logger } from '../logger.js'
import { containerName } from '../runner/container-spec.js'
import type { DockerEngine } from '../runner/docker-engine.js'
import type { Store } from '../store/store.js'
import { isTerminal } from './build-state.js'
import type { BuildRunner } from './build-runner.js'
import type { BuildLifecycle } from './lifecycle.js'

// Brings the database and the engine back into agreement, from labels and
// rows alone (never from memory): on start, and then periodically.
//   running row, running container   -> adopt (follow the log, wait again)
//   running row, exited container    -> decide the build from its exit status
//   running row, no container at all -> requeue (nothing ran) or lost
//   container without a live build   -> remove it

interface ReconcilerDeps {
  store: Store
  lifecycle: BuildLifecycle
  engine: DockerEngine
  runner: BuildRunner
  owner: string
  logger: Logger
}

export class Reconciler {
  readonly #deps: ReconcilerDeps

  constructor (deps: ReconcilerDeps) {
    this.#deps = deps
  }

  /**
   * A running build that this process does not supervise is abandoned: one
   * process owns the database, and the scheduler marks a build active in the
   * same tick as it claims it. So a pass that failed at start (the engine was
   * down) is simply made good by a later one.
   */
  async reconcile () {
    const { store, lifecycle, engine, runner, owner, logger } = this.#deps
    for (const build of await store.buildsInState(['running'])) {
      if (runner.isActive(build.id)) continue
      const state = await engine.inspect(build.containerId ?? containerName(build.id))
      // Claimed and launched while the engine answered.
      if (runner.isActive(build.id)) continue
      if (!state) {
        if (build.containerId) {
          await lifecycle.finish(build, { state: 'failed', reason: 'lost', message: 'the build container disappeared' })
        } else {
          await lifecycle.requeue(build.id)
        }
        logger.warn({ buildId: build.id }, build.containerId ? 'build lost its container' : 'build requeued')
        continue
      }
      if (!build.containerId) await lifecycle.record(build.id, { containerId: state.id })
      if (state.running) void runner.adopt(build, state.id)
      else await runner.finishExited(build, state.id)
    }
    for (const container of await engine.listOwned(owner)) {
      const build = await store.getBuild(container.buildId)
      if (build && !isTerminal(build.state)) continue
      if (build && runner.isActive(build.id)) continue
      logger.info({ container: container.name }, 'removing a container that belongs to no live build')
      await engine.remove(container.id)
    }
  }
}
