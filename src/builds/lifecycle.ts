import type { BootTestRecord } from '../cosa/kola-report.js'
import type { Logger } from '../logger.js'
import type { BuildChange, BuildPatch, Database, IdempotencyClaim, LeaseTerms, NewBuild, Placed, QuietPatch } from '../store/repositories.js'
import type { BuildEvent, BuildEventType } from './build-event.js'
import { canMove, isTerminal, type BuildState, type FailureReason } from './build-state.js'
import { HeldLeases } from './held-leases.js'
import type { ArchRun, Build, BuildResult } from './model.js'
import { endedAttempt, shouldRetry } from './retry-policy.js'
import { closedArches } from './run/arches.js'

// The one writer of a build's state and phase. Every move is checked against
// the transition table (build-state.ts) and written as a conditional update
// with its outbox event, in one transaction (the store's). The rules that
// come with a move live here: a final state forgets the result token and the
// phase, and a failed build names the phase it failed in. Subscribers hear of
// each event after it is committed; they read the outbox for what they missed.
//
// It also holds the leases of the builds this process supervises (claimed or
// taken over): every write of such a build carries the lease's fencing token
// in the same statement, and a write that changes nothing loses the lease
// (held-leases.ts). Writes by others (a cancel request, a result's
// rejection) are not a supervisor's and carry none.

export const PREPARING = 'preparing'
export const PUBLISHING = 'publishing'

export type FinalState = Exclude<BuildState, 'queued' | 'running'>

/** How a build ended. */
export interface Final {
  state: FinalState
  reason?: FailureReason | undefined
  message?: string | undefined
  exitCode?: number | undefined
  result?: BuildResult | undefined
  bootTest?: BootTestRecord | undefined
  /** A multi-arch build: how each arch ended (src/builds/run/arches.ts). */
  arches?: ArchRun[] | undefined
}

export const failed = (reason: FailureReason, message: string, exitCode?: number): Final =>
  ({ state: 'failed', reason, message, exitCode })

export type EventListener = (event: BuildEvent) => void

export const secondsBetween = (from?: string, to?: string) =>
  from && to ? Math.round((Date.parse(to) - Date.parse(from)) / 100) / 10 : undefined

export class BuildLifecycle {
  readonly #store: Database
  readonly #now: () => Date
  readonly #logger: Logger
  readonly #infrastructureRetries: number
  readonly #listeners = new Set<EventListener>()
  /** The leases of the builds this process supervises. */
  readonly leases: HeldLeases

  /** infrastructureRetries: builds.infrastructureRetries (src/builds/retry-policy.ts). */
  constructor (deps: { store: Database, now: () => Date, logger: Logger, lease: LeaseTerms, infrastructureRetries: number }) {
    this.#store = deps.store
    this.#now = deps.now
    this.#logger = deps.logger
    this.#infrastructureRetries = deps.infrastructureRetries
    this.leases = new HeldLeases({ store: deps.store, logger: deps.logger, terms: deps.lease })
  }

  /** Hears every event this process appends, once committed; returns the unsubscribe. */
  subscribe (listener: EventListener) {
    this.#listeners.add(listener)
    return () => { this.#listeners.delete(listener) }
  }

  async submit (build: NewBuild, claim?: IdempotencyClaim) {
    const outcome = await this.#store.builds.insertBuild(build, claim, this.#draft('build.queued'))
    if (outcome.kind === 'created') this.#tell(outcome.event)
    return outcome
  }

  /** Starts the oldest startable queued build, or the one placed on an engine (see BuildRepository.claimNext). */
  async claimNext (maxRunning: number, placed?: Placed) {
    const draft = this.#draft('build.started')
    const asked = performance.now()
    const claimed = await this.#store.builds.claimNext(maxRunning, draft.time, PREPARING, draft, this.leases.terms, placed)
    if (claimed) this.leases.hold(claimed.build.id, claimed.token, asked)
    return this.#told(claimed)
  }

  /**
   * A supervisor's write: fenced by the lease this process holds, and
   * refused without one (lost, or let go: a late write of a supervisor that
   * stopped must not land unfenced).
   */
  async #fenced<T> (buildId: string, write: (fence: number) => Promise<T | undefined>) {
    const fence = this.leases.token(buildId)
    if (fence === undefined) {
      this.#logger.warn({ buildId }, 'a write of a running build without its lease was refused')
      return undefined
    }
    const done = await write(fence)
    if (done === undefined) this.leases.lose(buildId)
    return done
  }

  /** The step a running build has begun. */
  async phase (id: string, phase: string) {
    return this.#move(id, 'running', 'running', { phase }, 'build.phase')
  }

  /** Fields of a running build no event is about (its commit, container, token), by its supervisor. */
  async record (id: string, patch: QuietPatch) {
    return this.#fenced(id, (fence) => this.#store.builds.update(id, ['running'], patch, fence))
  }

  /** Why a running build's posted result was refused: written by whichever replica took the post, not the supervisor. */
  async noteRejection (id: string, message: string) {
    return this.#store.builds.update(id, ['running'], { message })
  }

  /**
   * A queued build ends `cancelled` at once; a running one gets the request,
   * which its supervisor observes (an event) and acts on. Idempotent.
   */
  async requestCancel (build: Build) {
    const at = this.#now().toISOString()
    if (build.state === 'queued') {
      return this.#finishFrom(build, 'queued', { state: 'cancelled' }, { cancelRequestedAt: at })
    }
    if (build.state !== 'running' || build.cancelRequestedAt) return undefined
    return this.#move(build.id, 'running', 'running', { cancelRequestedAt: at }, 'build.cancel_requested')
  }

  /** A running build whose container never existed: nothing ran, it is simply run again. */
  async requeue (id: string) {
    // Nothing ran: the next attempt records the engine it runs on.
    return this.#move(id, 'running', 'queued', { phase: null, startedAt: null, engine: null, arch: null }, 'build.requeued')
  }

  /**
   * A multi-arch build goes on with its next arch, on the engine placed for
   * it (src/builds/run/arches.ts): fenced, 'full' when that engine has no
   * room by the time of the write. Its phase starts again at `preparing`.
   */
  async moveArch (id: string, to: Omit<Placed, 'id'>, arches: ArchRun[]) {
    const moved = await this.#fenced(id, (fence) => this.#store.builds.moveArch(id, to, arches, fence))
    if (moved === undefined || moved === 'full') return moved
    return this.phase(id, PREPARING)
  }

  /**
   * Ends a running build's attempt: the build ends, or, failed for
   * infrastructure with retries left (retry-policy.ts), is queued again
   * (state `queued` in the answer). Undefined when it was no longer running
   * (someone else ended it).
   */
  async finish (build: Build, final: Final) {
    // As stored: the supervisor may have moved the phase since `build` was read.
    const stored = await this.#store.builds.getBuild(build.id)
    if (stored?.state !== 'running') return undefined
    const at = this.#now().toISOString()
    const earlier = stored.attempts ?? []
    const attempts = [...earlier, endedAttempt(stored, final, at)]
    const cancelRequested = stored.cancelRequestedAt !== undefined
    if (shouldRetry({ final, earlier: earlier.length, cancelRequested, allowed: this.#infrastructureRetries })) return this.#retry(stored, attempts)
    // A multi-arch build ended by someone other than its arch sequence (the reconciler) closes its record here.
    const arches = final.arches ?? (stored.arches && closedArches(stored.arches, stored.arch, final, at, stored.stream))
    return this.#finishFrom(stored, 'running', { ...final, arches }, { attempts }, at)
  }

  /** The attempt failed for infrastructure: the build waits for its turn again, its attempt recorded. */
  async #retry (build: Build, attempts: NonNullable<Build['attempts']>) {
    const done = await this.#move(build.id, 'running', 'queued', {
      attempts,
      // What belonged to the attempt; the next records its own.
      phase: null,
      startedAt: null,
      engine: null,
      arch: null,
      containerId: null,
      exitCode: null,
      result: null,
      outcome: null,
      metaJson: null,
      resultTokenHash: null,
      // A multi-arch build starts again from its primary: arches already published come out unchanged.
      arches: null
    }, 'build.requeued')
    if (done) {
      const last = attempts.at(-1)!
      this.#logger.warn({ buildId: build.id, stream: build.stream, engine: last.engine, attempt: attempts.length, message: last.message },
        'build attempt failed for infrastructure reasons; the build is queued again')
    }
    return done
  }

  async #finishFrom (build: Build, from: BuildState, final: Final, extra: BuildPatch = {}, now?: string) {
    const phase = from === 'running' ? build.phase : (await this.#store.builds.getBuild(build.id))?.phase
    const at = now ?? this.#now().toISOString()
    const patch: BuildPatch = {
      ...extra,
      finishedAt: at,
      reason: final.reason,
      message: final.message,
      exitCode: final.exitCode,
      result: final.result,
      bootTest: final.bootTest,
      arches: final.arches,
      failedStep: final.state === 'failed' ? phase : undefined,
      phase: null,
      resultTokenHash: null
    }
    const done = await this.#move(build.id, from, final.state, patch, 'build.finished', at)
    if (done) this.#logFinished(done)
    return done
  }

  #logFinished (build: Build) {
    this.#logger.info({
      buildId: build.id,
      stream: build.stream,
      state: build.state,
      reason: build.reason,
      failedStep: build.failedStep,
      cosaBuildId: build.result?.cosaBuildId,
      queueWaitSeconds: secondsBetween(build.createdAt, build.startedAt ?? build.finishedAt),
      runSeconds: secondsBetween(build.startedAt, build.finishedAt)
    }, 'build finished')
  }

  async #move (id: string, from: BuildState, to: BuildState, patch: BuildPatch, type: BuildEventType, at?: string) {
    if (from !== to && !canMove(from, to)) {
      // A programming error: the caller asked for a move the table forbids.
      this.#logger.error({ buildId: id, from, to }, 'illegal build state transition refused')
      return undefined
    }
    if (isTerminal(from)) return undefined
    const draft = this.#draft(type, at)
    // A queued build has no lease; a cancel request is the API's, not the supervisor's.
    if (from !== 'running' || type === 'build.cancel_requested') return this.#told(await this.#store.builds.transition(id, [from], to, patch, draft))
    const done = this.#told(await this.#fenced(id, (fence) => this.#store.builds.transition(id, [from], to, patch, draft, fence)))
    // A build that stops running has no lease any more.
    if (done && to !== 'running') this.leases.forget(id)
    return done
  }

  #draft (type: BuildEventType, at?: string) {
    return { type, time: at ?? this.#now().toISOString() }
  }

  #told (change: BuildChange | undefined) {
    if (!change) return undefined
    this.#tell(change.event)
    return change.build
  }

  #tell (event: BuildEvent) {
    for (const listener of this.#listeners) {
      try {
        listener(event)
      } catch (err) {
        this.#logger.error({ err, event: event.type }, 'an event listener failed')
      }
    }
  }
}
